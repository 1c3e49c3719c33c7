package webhooktest

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/randfill"
)

// PodFiller fills objects at random (sigs.k8s.io/randfill, every field) for the tests that
// compare a lean decoding of pods with the generated one. The values random bytes would
// make unencodable, or encoded differently from what the API server sends, are drawn as
// the API server would write them: resource quantities, int-or-strings and managed
// fields' field sets.
func PodFiller(seed int64) *randfill.Filler {
	return randfill.NewWithSeed(seed).Funcs(
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewMilliQuantity(c.Int63n(1<<40), resource.DecimalSI)
		},
		func(v *intstr.IntOrString, c randfill.Continue) {
			if c.Bool() {
				*v = intstr.FromInt32(c.Int31())
			} else {
				*v = intstr.FromString(c.String(0))
			}
		},
		func(f *metav1.FieldsV1, c randfill.Continue) { f.Raw = []byte(`{"f:metadata":{"f:labels":{}}}`) },
	)
}
