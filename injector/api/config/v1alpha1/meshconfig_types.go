package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MeshConfig is osm-edge's mesh configuration. corsmesh reads one feature flag of it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=meshconfig
// +kubebuilder:printcolumn:name="PluginPolicy",type=boolean,JSONPath=".spec.featureFlags.enablePluginPolicy",description="Whether PluginChains and PluginConfigs are applied"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type MeshConfig struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is osm-edge's MeshConfigSpec; fields corsmesh does not read are kept as
	// written.
	// +optional
	Spec MeshConfigSpec `json:"spec,omitempty"`
}

// MeshConfigSpec is the part of osm-edge's MeshConfigSpec that corsmesh reads.
//
// +kubebuilder:pruning:PreserveUnknownFields
type MeshConfigSpec struct {
	// featureFlags are osm-edge's feature flags.
	// +optional
	FeatureFlags FeatureFlags `json:"featureFlags,omitempty"`
}

// FeatureFlags are osm-edge's feature flags; corsmesh reads enablePluginPolicy.
//
// +kubebuilder:pruning:PreserveUnknownFields
type FeatureFlags struct {
	// enablePluginPolicy turns the plugin resources (Plugin, PluginChain,
	// PluginConfig) on. osm-edge's default is false; while it is false corsmesh
	// injects no pod and leaves injected pods' policies as they are.
	// +optional
	EnablePluginPolicy bool `json:"enablePluginPolicy"`
}

// MeshConfigList is a list of MeshConfigs.
//
// +kubebuilder:object:root=true
type MeshConfigList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	// items is the list of MeshConfigs.
	Items []MeshConfig `json:"items"`
}
