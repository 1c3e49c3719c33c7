package slim_test

import (
	"bytes"
	"io"
	"math/rand"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/util/diff"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
	restclientwatch "k8s.io/client-go/rest/watch"
	"sigs.k8s.io/randfill"

	"github.com/corsmesh/corsmesh/webhook/internal/webhooktest"
	"github.com/corsmesh/corsmesh/webhook/slim"
)

// podGenerator fills pods at random (randfill, every field), then draws what Pod reads
// from values that matter to it: corsmesh's annotations and conditions among others, the
// OS node selector among others.
type podGenerator struct {
	fill *randfill.Filler
	r    *rand.Rand
}

func newPodGenerator(seed int64) *podGenerator {
	fill := webhooktest.PodFiller(seed).NilChance(0.3).NumElements(0, 3)
	return &podGenerator{fill: fill, r: rand.New(rand.NewSource(seed))}
}

func (g *podGenerator) pod() *corev1.Pod {
	r := g.r
	chance := func(p float64) bool { return r.Float64() < p }
	pod := &corev1.Pod{}
	g.fill.Fill(pod)
	if chance(0.7) {
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		var values [2]string
		g.fill.Fill(&values)
		pod.Annotations["corsmesh.io/status"] = "injected"
		pod.Annotations["openservicemesh.io/sidecar-injection"] = values[0]
		pod.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = values[1]
	}
	if chance(0.7) {
		if pod.Spec.NodeSelector == nil {
			pod.Spec.NodeSelector = map[string]string{}
		}
		pod.Spec.NodeSelector[corev1.LabelOSStable] = pick(r, "linux", "windows", "")
	}
	if chance(0.7) {
		c := corev1.PodCondition{}
		g.fill.Fill(&c)
		c.Type = "corsmesh.io/RestartRequired"
		pod.Status.Conditions = append(pod.Status.Conditions, c, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue})
	}
	if chance(0.1) {
		// A watch's bookmark: the reflector reads this annotation off the decoded pod.
		pod.Annotations = map[string]string{metav1.InitialEventsAnnotationKey: "true"}
	}
	if chance(0.2) {
		now := metav1.Now()
		pod.DeletionTimestamp = &now
	}
	if chance(0.2) {
		pod.Spec = corev1.PodSpec{}
	}
	return pod
}

func pick[T any](r *rand.Rand, values ...T) T { return values[r.Intn(len(values))] }

// fullSlim is what the informer held before: the generated decoder's pod, through Pod.
func fullSlim(t testing.TB, m []byte) *corev1.Pod {
	t.Helper()
	var full corev1.Pod
	if err := full.Unmarshal(m); err != nil {
		t.Fatalf("generated decoder: %v", err)
	}
	out, err := slim.Pod(&full)
	if err != nil {
		t.Fatal(err)
	}
	return out.(*corev1.Pod)
}

// The lean decoder's pod is the generated decoder's through Pod, field for field, over
// thousands of random pods: Pod's field list is the one the lean decoder is checked
// against.
func TestDecodePodEqualsSlimOfFullDecode(t *testing.T) {
	g := newPodGenerator(14)
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := range n {
		pod := g.pod()
		m, err := pod.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		want := fullSlim(t, m)
		got, err := slim.DecodePod(m)
		if err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("pod %d: lean decode differs from Pod(full decode) (-want +got):\n%s", i, diff.Diff(want, got))
		}
	}
}

// protobufCodec is the client's protobuf decoder, as a REST client gets it from its
// negotiator, with LeanPods around its serializers or not.
func protobufCodec(t testing.TB, lean bool) (decoder runtime.Decoder, info runtime.SerializerInfo) {
	t.Helper()
	var ns runtime.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	if lean {
		ns = slim.LeanPods(ns)
	}
	info, ok := runtime.SerializerInfoForMediaType(ns.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	if !ok {
		t.Fatal("no protobuf serializer")
	}
	decoder, err := runtime.NewClientNegotiator(ns, corev1.SchemeGroupVersion).Decoder(runtime.ContentTypeProtobuf, nil)
	if err != nil {
		t.Fatal(err)
	}
	return decoder, info
}

// What the API server sends (a Pod and a PodList in their envelope, a watch stream of
// events) comes out of a LeanPods client decoder as the normal decoder's through Pod;
// a Status and another kind come out as the normal decoder's.
func TestLeanPodsDecodesWhatTheAPIServerSends(t *testing.T) {
	lean, _ := protobufCodec(t, true)
	normal, info := protobufCodec(t, false)
	// As the API server sends it: in the envelope, its kind and version set.
	encoder := scheme.Codecs.WithoutConversion().EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion)
	encode := func(obj runtime.Object) []byte {
		t.Helper()
		var buf bytes.Buffer
		if err := encoder.Encode(obj, &buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	slimOf := func(obj runtime.Object) *corev1.Pod {
		out, _ := slim.Pod(obj)
		return out.(*corev1.Pod)
	}
	g := newPodGenerator(41)
	for i := range 200 {
		pod := g.pod()
		pod.TypeMeta = metav1.TypeMeta{}
		data := encode(pod)

		want, _, err := normal.Decode(data, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := lean.Decode(data, nil, nil)
		if err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, slimOf(want)) {
			t.Fatalf("pod %d (-want +got):\n%s", i, diff.Diff(slimOf(want), got))
		}
		into := &corev1.Pod{Spec: corev1.PodSpec{NodeName: "stale"}}
		if got, _, err := lean.Decode(data, nil, into); err != nil || got != into || !reflect.DeepEqual(into, slimOf(want)) {
			t.Fatalf("pod %d decoded into a pod: %v, same object %v (-want +got):\n%s", i, err, got == into, diff.Diff(slimOf(want), into))
		}
	}

	list := &corev1.PodList{ListMeta: metav1.ListMeta{ResourceVersion: "42", Continue: "next"}}
	for range 20 {
		list.Items = append(list.Items, *g.pod())
	}
	data := encode(list)
	wantList, _, err := normal.Decode(data, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range wantList.(*corev1.PodList).Items {
		wantList.(*corev1.PodList).Items[i] = *slimOf(&wantList.(*corev1.PodList).Items[i])
	}
	for _, into := range []runtime.Object{nil, &corev1.PodList{Items: []corev1.Pod{{}}}} {
		gotList, _, err := lean.Decode(data, nil, into)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotList, wantList) {
			t.Fatalf("PodList into %T (-want +got):\n%s", into, diff.Diff(wantList, gotList))
		}
	}

	// A watch stream, framed as a REST client reads it.
	var stream bytes.Buffer
	enc := streaming.NewEncoder(info.StreamSerializer.Framer.NewFrameWriter(&stream), info.StreamSerializer.Serializer)
	pods := []*corev1.Pod{g.pod(), g.pod(), g.pod()}
	for _, p := range pods {
		if err := enc.Encode(&metav1.WatchEvent{Type: string(watch.Modified), Object: runtime.RawExtension{Raw: encode(p)}}); err != nil {
			t.Fatal(err)
		}
	}
	status := &metav1.Status{Status: metav1.StatusFailure, Code: 410, Reason: metav1.StatusReasonExpired, Message: "too old resource version"}
	if err := enc.Encode(&metav1.WatchEvent{Type: string(watch.Error), Object: runtime.RawExtension{Raw: encode(status)}}); err != nil {
		t.Fatal(err)
	}
	events := restclientwatch.NewDecoder(streaming.NewDecoder(info.StreamSerializer.Framer.NewFrameReader(io.NopCloser(&stream)), info.StreamSerializer.Serializer), lean)
	for i, p := range pods {
		typ, obj, err := events.Decode()
		if err != nil || typ != watch.Modified {
			t.Fatalf("event %d: %s, %v", i, typ, err)
		}
		want, _, err := normal.Decode(encode(p), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(obj, slimOf(want)) {
			t.Fatalf("event %d (-want +got):\n%s", i, diff.Diff(slimOf(want), obj))
		}
	}
	typ, obj, err := events.Decode()
	if err != nil || typ != watch.Error {
		t.Fatalf("error event: %s, %v", typ, err)
	}
	if got, ok := obj.(*metav1.Status); !ok || got.Code != 410 || got.Message != status.Message {
		t.Fatalf("error event's object %#v, want the Status", obj)
	}

	// Another kind is the normal decoder's, whole.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s", Annotations: map[string]string{"a": "b"}}, Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.1"}}
	got, _, err := lean.Decode(encode(svc), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want, _, _ := normal.Decode(encode(svc), nil, nil); !reflect.DeepEqual(got, want) {
		t.Fatalf("a Service (-want +got):\n%s", diff.Diff(want, got))
	}
}

// Hostile bytes are an error, never a panic nor a pod.
func TestDecodePodRejectsMalformed(t *testing.T) {
	pod, err := newPodGenerator(7).pod().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		m    []byte
	}{
		{"truncated in a field", pod[:len(pod)/2]},
		{"truncated key varint", []byte{0x80}},
		{"varint of eleven bytes", append([]byte{0x08}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"length past the end", []byte{0x0a, 0x05, 0x0a, 0x01}},
		{"length of 2^63", []byte{0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
		{"field number zero", []byte{0x02, 0x00}},
		{"group", []byte{0x0b, 0x0c}},
		{"metadata as a varint", []byte{0x08, 0x01}},
		{"name as a varint", []byte{0x0a, 0x02, 0x08, 0x01}},
		{"label entry truncated", []byte{0x0a, 0x04, 0x5a, 0x02, 0x0a, 0x05}},
		{"hostNetwork as bytes", []byte{0x12, 0x03, 0x5a, 0x01, 0x00}},
		{"container port garbage", []byte{0x12, 0x06, 0x12, 0x04, 0x32, 0x02, 0x08, 0x80}},
		{"condition type truncated", []byte{0x1a, 0x04, 0x12, 0x02, 0x0a, 0x09}},
		{"fixed64 truncated", []byte{0x09, 0x01, 0x02}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := slim.DecodePod(tt.m)
			if err == nil {
				t.Fatalf("decoded %v, want an error", got)
			}
			if got != nil {
				t.Errorf("returned a pod with the error %v", err)
			}
		})
	}
}

// FuzzDecodePod: any bytes decode without a panic, through DecodePod and through a
// LeanPods decoder; a pod the generated decoder reads, marshalled again, decodes to
// Pod(its full decode).
func FuzzDecodePod(f *testing.F) {
	g := newPodGenerator(99)
	for range 8 {
		m, err := g.pod().Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m)
		f.Add(m[:len(m)*2/3])
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add([]byte{0x12, 0x06, 0x12, 0x04, 0x32, 0x02, 0x08, 0x80})
	var ns runtime.NegotiatedSerializer = slim.LeanPods(scheme.Codecs.WithoutConversion())
	info, _ := runtime.SerializerInfoForMediaType(ns.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	f.Fuzz(func(t *testing.T, m []byte) {
		_, _ = slim.DecodePod(m)
		envelope := (&runtime.Unknown{TypeMeta: runtime.TypeMeta{APIVersion: "v1", Kind: "Pod"}, Raw: m})
		for _, kind := range []string{"Pod", "PodList"} {
			envelope.Kind = kind
			data, err := envelope.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			_, _, _ = info.Serializer.Decode(append([]byte("k8s\x00"), data...), nil, nil)
		}

		var full corev1.Pod
		if full.Unmarshal(m) != nil {
			return
		}
		again, err := full.Marshal()
		if err != nil {
			return // a pod the generated encoder cannot write (a Quantity it reads but cannot format)
		}
		want := fullSlim(t, again)
		got, err := slim.DecodePod(again)
		if err != nil {
			t.Fatalf("lean decode of a marshalled pod: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("(-want +got):\n%s", diff.Diff(want, got))
		}
	})
}

// BenchmarkDecodePod decodes hack/bench/webhook's injected pod, running, as the pods'
// informer receives it (protobuf, in its envelope) and keeps it (through Pod): with the
// client's normal decoder ("full") and with LeanPods ("lean"); each with the managed
// fields the API server adds, or without.
func BenchmarkDecodePod(b *testing.B) {
	full, info := protobufCodec(b, false)
	lean, _ := protobufCodec(b, true)
	encoder := scheme.Codecs.WithoutConversion().EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion)
	for _, managed := range []bool{false, true} {
		pod := benchPod(b, 1)
		if managed {
			pod.ManagedFields = benchManagedFields()
		}
		var buf bytes.Buffer
		if err := encoder.Encode(pod, &buf); err != nil {
			b.Fatal(err)
		}
		name := "injected-running"
		if managed {
			name += "+managedFields"
		}
		for _, d := range []struct {
			name    string
			decoder runtime.Decoder
		}{{"full", full}, {"lean", lean}} {
			b.Run(name+"/"+d.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(buf.Len()))
				for b.Loop() {
					obj, _, err := d.decoder.Decode(buf.Bytes(), nil, nil)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := slim.Pod(obj); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// benchManagedFields are a running pod's managed fields: its creator's and the kubelet's.
func benchManagedFields() []metav1.ManagedFieldsEntry {
	now := metav1.Now()
	spec := `{"f:metadata":{"f:annotations":{".":{},"f:corsmesh.io/status":{}},"f:labels":{".":{},"f:app":{},"f:version":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"pipy\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:ports":{".":{},"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:protocol":{}}},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}`
	status := `{"f:status":{"f:conditions":{"k:{\"type\":\"ContainersReady\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}},"k:{\"type\":\"Initialized\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}},"k:{\"type\":\"Ready\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}}},"f:containerStatuses":{},"f:hostIP":{},"f:phase":{},"f:podIP":{},"f:podIPs":{".":{},"k:{\"ip\":\"10.244.0.7\"}":{".":{},"f:ip":{}}},"f:startTime":{}}}`
	return []metav1.ManagedFieldsEntry{
		{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &now, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(spec)}},
		{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &now, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(status)}, Subresource: "status"},
	}
}

// The bookmark ending a watch's initial events is a pod of a resourceVersion and one
// annotation, which the reflector reads off the decoded pod: without it, the informer
// never syncs.
func TestDecodePodKeepsTheInitialEventsMark(t *testing.T) {
	bookmark := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "42", Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}}}
	m, err := bookmark.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := slim.DecodePod(m)
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != "42" || got.Annotations[metav1.InitialEventsAnnotationKey] != "true" {
		t.Fatalf("decoded bookmark %+v, want resourceVersion 42 and %s=true", got.ObjectMeta, metav1.InitialEventsAnnotationKey)
	}
}
