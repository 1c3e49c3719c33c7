// Package v1alpha2 holds osm-edge's MeshConfig (config.openservicemesh.io/v1alpha2, the
// version osm-edge stores), reduced to what corsmesh reads: the feature flag
// spec.featureFlags.enablePluginPolicy, which gates the plugin resources as it does in
// osm-edge. Every other field of an osm-edge MeshConfig is kept by the API server (the
// schema preserves unknown fields) so an osm-edge MeshConfig applies as is.
//
// +kubebuilder:object:generate=true
// +groupName=config.openservicemesh.io
package v1alpha2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is osm-edge's configuration API group.
const GroupName = "config.openservicemesh.io"

// MeshConfigName is the name of the mesh's MeshConfig, as in osm-edge; it lives in the
// control plane's namespace (corsmesh's own).
const MeshConfigName = "osm-mesh-config"

var (
	// GroupVersion is the group and version of the types in this package.
	GroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha2"}

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
