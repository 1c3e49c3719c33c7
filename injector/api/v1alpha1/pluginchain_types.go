package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PluginChain mounts plugins on the chains of the sidecars of the pods it
// selects (osm-edge compatible). The PluginChain's own namespace does not
// limit which pods it selects: only its selectors do.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:resource:scope=Namespaced,shortName=pichn,categories=corsmesh
// +kubebuilder:printcolumn:name="Chain",type=string,JSONPath=".spec.chains[0].name",description="First chain of the spec"
// +kubebuilder:printcolumn:name="Plugins",type=string,JSONPath=".spec.chains[0].plugins",description="Plugins mounted on the first chain"
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`,description="Whether corsmesh uses this chain"
// +kubebuilder:printcolumn:name="Pods",type=integer,JSONPath=".status.selectedPods",description="Pods selected by this chain",priority=1
// +kubebuilder:printcolumn:name="Without-Sidecar",type=integer,JSONPath=".status.podsWithoutSidecar",description="Selected pods that still run without the proxy sidecar",priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type PluginChain struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says which plugins are mounted on which chains of which pods.
	Spec PluginChainSpec `json:"spec"`

	// status is written by the corsmesh controller.
	// +optional
	Status PluginChainStatus `json:"status,omitempty"`
}

// PluginChainSpec is the specification of a PluginChain.
type PluginChainSpec struct {
	// chains lists the chains and the plugins mounted on each.
	// +kubebuilder:validation:MinItems=1
	Chains []ChainPluginSpec `json:"chains"`

	// selectors choose the pods whose sidecars get these chains. Both
	// selectors must match (they are ANDed); an absent selector matches
	// everything.
	Selectors ChainSelectorSpec `json:"selectors"`
}

// ChainPluginSpec is one chain and the plugins mounted on it.
type ChainPluginSpec struct {
	// name is the chain: inbound-http is the one that serves CORS.
	// +kubebuilder:validation:Enum=inbound-tcp;inbound-http;outbound-tcp;outbound-http
	Name string `json:"name"`

	// plugins are the names of the Plugins mounted on this chain.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MinLength=1
	Plugins []string `json:"plugins"`
}

// ChainSelectorSpec selects the pods a PluginChain applies to.
type ChainSelectorSpec struct {
	// podSelector selects pods by their labels. Absent: all pods.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`

	// namespaceSelector selects pods by the labels of their namespace.
	// Absent: pods in every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// PluginChainStatus is the observed state of a PluginChain.
type PluginChainStatus struct {
	// observedGeneration is the metadata.generation this status was computed
	// from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions describe the current state of the PluginChain.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// selectedPods is the number of running pods this chain selects.
	// +optional
	// +kubebuilder:validation:Minimum=0
	SelectedPods int32 `json:"selectedPods,omitempty"`

	// podsWithoutSidecar is the number of selected pods that run without the
	// corsmesh proxy (created before the chain, or before their namespace was
	// monitored); they need a restart to get it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	PodsWithoutSidecar int32 `json:"podsWithoutSidecar,omitempty"`

	// restartHint is the command that restarts the workloads of the pods
	// counted in podsWithoutSidecar.
	// +optional
	RestartHint string `json:"restartHint,omitempty"`
}

// PluginChainList is a list of PluginChains.
//
// +kubebuilder:object:root=true
type PluginChainList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	// items is the list of PluginChains.
	Items []PluginChain `json:"items"`
}
