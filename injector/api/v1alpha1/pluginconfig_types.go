package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// PluginConfig configures a plugin for the Services it names (osm-edge
// compatible). For the CORS plugin, config holds the CORS policy of those
// Services.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:resource:scope=Namespaced,shortName=picfg,categories=corsmesh
// +kubebuilder:printcolumn:name="Plugin",type=string,JSONPath=".spec.plugin",description="Plugin configured"
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`,description="Whether corsmesh uses this configuration"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type PluginConfig struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec holds the plugin's configuration and the Services it applies to.
	Spec PluginConfigSpec `json:"spec"`

	// status is written by the corsmesh controller.
	// +optional
	Status PluginConfigStatus `json:"status,omitempty"`
}

// PluginConfigSpec is the specification of a PluginConfig.
type PluginConfigSpec struct {
	// plugin is the name of the Plugin this configures.
	// +kubebuilder:validation:MinLength=1
	Plugin string `json:"plugin"`

	// destinationRefs are the Services whose traffic this configuration
	// applies to.
	// +kubebuilder:validation:MinItems=1
	DestinationRefs []DestinationRef `json:"destinationRefs"`

	// config is the plugin's configuration, a free-form object whose schema
	// depends on the plugin. For CORS: allowOrigins (a list of objects with
	// one of exact, prefix, regex or wildcard such as https://*.example.com or
	// http://localhost:*), allowCredentials, allowMethods, allowHeaders,
	// exposeHeaders, maxAge (such as 24h), and corsmesh's preflight
	// (any-options or strict), refusedPreflight (forward or answer) and
	// reportOnly.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Config runtime.RawExtension `json:"config"`
}

// DestinationRef names a Service a PluginConfig applies to. It has the fields
// of osm-edge's destination references (a corev1.ObjectReference restricted
// to kind, name and namespace).
type DestinationRef struct {
	// kind of the destination: only Service.
	// +kubebuilder:validation:Enum=Service
	Kind string `json:"kind"`

	// name of the Service.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// namespace of the Service.
	// +kubebuilder:validation:MinLength=1
	Namespace string `json:"namespace"`
}

// PluginConfigStatus is the observed state of a PluginConfig.
type PluginConfigStatus struct {
	// observedGeneration is the metadata.generation this status was computed
	// from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions describe the current state of the PluginConfig. The
	// Accepted condition tells whether its config is valid and in use.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// PluginConfigList is a list of PluginConfigs.
//
// +kubebuilder:object:root=true
type PluginConfigList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	// items is the list of PluginConfigs.
	Items []PluginConfig `json:"items"`
}
