// Package v1alpha1 is osm-edge's older MeshConfig version (config.openservicemesh.io/v1alpha1),
// which osm-edge still serves beside v1alpha2 with the same fields: a MeshConfig written
// for it applies as is. corsmesh reads v1alpha2; the types here only generate the CRD's
// second version.
//
// +kubebuilder:object:generate=true
// +groupName=config.openservicemesh.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is osm-edge's configuration API group.
const GroupName = "config.openservicemesh.io"

var (
	// GroupVersion is the group and version of the types in this package.
	GroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

	// SchemeBuilder collects the functions that register this package's types.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme registers this package's types into a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &MeshConfig{}, &MeshConfigList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
