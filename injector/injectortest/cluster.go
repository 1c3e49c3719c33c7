// Package injectortest grows a cluster for the benchmarks of the injector and the webhook,
// so both measure the same one, and builds the policy objects their tests share.
package injectortest

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/injector/kubecluster"
)

// HomeNamespace holds every hundredth of the Services Grow adds: the seed's pod's namespace.
const HomeNamespace = "pipy"

// Grow adds to a cluster holding at least one PluginChain: chains-1 copies of that chain
// selecting pods nobody creates, the namespaces ns-1 … ns-99, and services Services spread
// over them and HomeNamespace, each selecting pods nobody creates on port 80 → 8080. Then
// it gives every object a resourceVersion of its own, as an informer would, so that the
// injector compiles and parses each once.
func Grow(objs *injector.Objects, chains, services int) {
	for i := 1; i < 100; i++ {
		name := fmt.Sprintf("ns-%d", i)
		objs.Namespaces = append(objs.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: name, Labels: map[string]string{corev1.LabelMetadataName: name},
		}})
	}
	for i := range chains - 1 {
		c := objs.Chains[0].DeepCopy()
		c.Name = fmt.Sprintf("chain-%d", i)
		c.Spec.Selectors.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", i)}}
		objs.Chains = append(objs.Chains, c)
	}
	for i := range services {
		ns := fmt.Sprintf("ns-%d", i%100)
		if i%100 == 0 {
			ns = HomeNamespace
		}
		objs.ServiceList = append(objs.ServiceList, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i), Namespace: ns},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": fmt.Sprintf("app-%d", i)},
				Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
			},
		})
	}
	rv := 1
	Each(objs, func(o metav1.Object) {
		o.SetResourceVersion(fmt.Sprint(rv))
		rv++
	})
}

// Each calls fn on every object of the cluster.
func Each(objs *injector.Objects, fn func(metav1.Object)) {
	for _, o := range kubecluster.Objects(objs) {
		fn(o)
	}
}

// PluginConfig is a PluginConfig of HomeNamespace configuring plugin with cfg (spec.config)
// for the Services of HomeNamespace named, created at created.
func PluginConfig(name, plugin, cfg string, created time.Time, services ...string) *v1alpha1.PluginConfig {
	pc := &v1alpha1.PluginConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: HomeNamespace, Name: name, Generation: 1, CreationTimestamp: metav1.NewTime(created)},
		Spec:       v1alpha1.PluginConfigSpec{Plugin: plugin, Config: runtime.RawExtension{Raw: []byte(cfg)}},
	}
	for _, s := range services {
		pc.Spec.DestinationRefs = append(pc.Spec.DestinationRefs, v1alpha1.DestinationRef{Kind: v1alpha1.DestinationKindService, Name: s, Namespace: HomeNamespace})
	}
	return pc
}
