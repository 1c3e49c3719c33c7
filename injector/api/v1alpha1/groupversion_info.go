// Package v1alpha1 contains the plugin.flomesh.io/v1alpha1 API types: Plugin,
// PluginChain and PluginConfig. Their schema is compatible with osm-edge's
// plugin resources, so osm-edge manifests apply unchanged; corsmesh adds a
// status subresource (conditions written by its controller) and printer
// columns.
//
// +kubebuilder:object:generate=true
// +groupName=plugin.flomesh.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of the plugin resources.
const GroupName = "plugin.flomesh.io"

var (
	// GroupVersion is the group and version of the types in this package.
	GroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

	// SchemeBuilder collects the functions that register this package's
	// types into a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme registers this package's types into a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Resource returns the GroupResource of the named resource (e.g. "pluginconfigs")
// in this API group.
func Resource(resource string) schema.GroupResource {
	return GroupVersion.WithResource(resource).GroupResource()
}

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&Plugin{}, &PluginList{},
		&PluginChain{}, &PluginChainList{},
		&PluginConfig{}, &PluginConfigList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
