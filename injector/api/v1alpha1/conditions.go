package v1alpha1

// Condition types written into the status of Plugin, PluginChain and
// PluginConfig by the corsmesh controller.
const (
	// ConditionAccepted tells whether corsmesh understood the resource and
	// uses it. Status True: it is in effect. Status False: it is ignored, and
	// the reason and message say why.
	ConditionAccepted = "Accepted"
)

// Reasons of the Accepted condition.
const (
	// ReasonAccepted: the resource is valid and in effect.
	ReasonAccepted = "Accepted"

	// ReasonInvalid: the resource fails validation (for instance a
	// PluginConfig whose config is not a valid policy for its plugin); the
	// message names the offending field.
	ReasonInvalid = "Invalid"

	// ReasonUnsupportedPlugin: the resource names a plugin that corsmesh does
	// not implement natively (corsmesh never runs pipyscript), so the plugin
	// is not applied.
	ReasonUnsupportedPlugin = "UnsupportedPlugin"

	// ReasonUnsupportedChain: a PluginChain mounts a plugin on a chain that
	// corsmesh does not serve (only inbound-http is used for CORS).
	ReasonUnsupportedChain = "UnsupportedChain"

	// ReasonPluginNotFound: a PluginChain or PluginConfig names a Plugin
	// that does not exist.
	ReasonPluginNotFound = "PluginNotFound"

	// ReasonDestinationNotFound: a PluginConfig's destinationRefs name a
	// Service that does not exist (yet).
	ReasonDestinationNotFound = "DestinationNotFound"

	// ReasonConflict: the resource conflicts with another one (for instance
	// two PluginConfigs of the same plugin for one Service); the message
	// names the other resource and which one wins.
	ReasonConflict = "Conflict"

	// ReasonPluginPolicyDisabled: osm-edge's plugin-policy switch (MeshConfig
	// spec.featureFlags.enablePluginPolicy) is off, so no plugin resource is
	// applied; the message says how to turn it on.
	ReasonPluginPolicyDisabled = "PluginPolicyDisabled"
)

// Chain names a PluginChain can mount plugins on (the values osm-edge
// accepts). corsmesh serves CORS on ChainInboundHTTP only.
const (
	ChainInboundTCP   = "inbound-tcp"
	ChainInboundHTTP  = "inbound-http"
	ChainOutboundTCP  = "outbound-tcp"
	ChainOutboundHTTP = "outbound-http"
)

// DestinationKindService is the only kind a PluginConfig destinationRef may
// name.
const DestinationKindService = "Service"
