package webhook

// The webhook's permissions, the one source of manifests/base/rbac.yaml (`make generate`;
// `make verify-generate` fails when the file is stale). No wildcard, no Secrets (the
// serving certificate is a mounted volume), no write to any spec.
//
// Admission and the controllers read, through informers: namespaces (monitored, opted
// out), Services (the intercepted ports), the plugin resources, and ReplicaSets as
// metadata (a pod's Deployment).
// +kubebuilder:rbac:groups="",resources=namespaces;services,verbs=get;list;watch
// +kubebuilder:rbac:groups=plugin.flomesh.io,resources=plugins;pluginchains;pluginconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch
//
// Config sync patches the policy annotation of injected pods and their RestartRequired
// condition.
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods/status,verbs=patch
//
// The status controllers patch the status of PluginChains and PluginConfigs; before an
// opt-in rollout restart the PluginChain controller records the restarted workloads in an
// annotation of the chain (a patch with an optimistic lock), and the restart itself is a
// patch of the pod template's annotations, as `kubectl rollout restart` does.
// +kubebuilder:rbac:groups=plugin.flomesh.io,resources=pluginchains/status;pluginconfigs/status,verbs=patch
// +kubebuilder:rbac:groups=plugin.flomesh.io,resources=pluginchains,verbs=patch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=patch
//
// Injected / skipped Events on pods and their owners, in every namespace.
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
//
// In the webhook's own namespace only: osm-edge's MeshConfig (the plugin-policy switch),
// and the controllers' leader-election Lease, by name (= --leader-election-id; create
// cannot be limited to a name).
// +kubebuilder:rbac:groups=config.openservicemesh.io,resources=meshconfigs,verbs=get;list;watch,namespace=corsmesh-system
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=create,namespace=corsmesh-system
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,resourceNames=corsmesh-webhook,verbs=get;update;patch,namespace=corsmesh-system
