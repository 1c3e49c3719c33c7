package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Plugin declares a sidecar plugin (osm-edge compatible). corsmesh does not
// run the pipyscript: the plugins it supports are implemented natively by its
// proxy, and a Plugin it does not implement is reported in its status.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:resource:scope=Cluster,shortName=pi,categories=corsmesh
// +kubebuilder:printcolumn:name="Priority",type=number,JSONPath=".spec.priority",description="Priority of the plugin within a chain"
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`,description="Whether corsmesh implements and uses this plugin"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type Plugin struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the plugin.
	// +optional
	Spec PluginSpec `json:"spec,omitempty"`

	// status is written by the corsmesh controller.
	// +optional
	Status PluginStatus `json:"status,omitempty"`
}

// PluginSpec is the specification of a Plugin.
type PluginSpec struct {
	// priority orders the plugins mounted on one chain, as in osm-edge.
	// +optional
	Priority *float64 `json:"priority,omitempty"`

	// pipyscript is the plugin's PipyJS script, kept for compatibility with
	// osm-edge. corsmesh never executes it.
	// +optional
	PipyScript string `json:"pipyscript,omitempty"`
}

// PluginStatus is the observed state of a Plugin.
type PluginStatus struct {
	// observedGeneration is the metadata.generation this status was computed
	// from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions describe the current state of the Plugin. The Accepted
	// condition tells whether corsmesh implements the plugin.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// PluginList is a list of Plugins.
//
// +kubebuilder:object:root=true
type PluginList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	// items is the list of Plugins.
	Items []Plugin `json:"items"`
}
