package admit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// PolicyValidator checks Plugin, PluginChain and PluginConfig objects at admission:
// invalid ones are rejected with every error under its field path, risky ones admitted
// with warnings.
type PolicyValidator struct {
	Resolver *injector.Resolver
	Log      logr.Logger
}

// Handle implements admission.Handler.
func (v *PolicyValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation == admissionv1.Delete || req.Kind.Group != v1alpha1.GroupName {
		return admission.Allowed("")
	}
	lookup := func(name string) *v1alpha1.Plugin {
		p, err := v.Resolver.Cluster().Plugin(ctx, name)
		if err != nil {
			v.Log.Error(err, "reading Plugin", "name", name)
		}
		return p
	}
	var errs field.ErrorList
	var warnings []string
	var name string
	switch req.Kind.Kind {
	case "Plugin":
		var p v1alpha1.Plugin
		if err := decodeObject(req.Object.Raw, &p); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		name = p.Name
		errs, warnings = v.Resolver.Injector().ValidatePlugin(&p)
	case "PluginChain":
		var c v1alpha1.PluginChain
		if err := decodeObject(req.Object.Raw, &c); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		name = c.Name
		errs, warnings = v.Resolver.Injector().ValidatePluginChain(&c, lookup)
	case "PluginConfig":
		var c v1alpha1.PluginConfig
		if err := decodeObject(req.Object.Raw, &c); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if c.Namespace == "" {
			c.Namespace = req.Namespace
		}
		name = c.Name
		errs, warnings = v.Resolver.Injector().ValidatePluginConfig(&c, lookup)
	default:
		return admission.Allowed("")
	}
	if len(errs) > 0 {
		invalid := apierrors.NewInvalid(v1alpha1.GroupVersion.WithKind(req.Kind.Kind).GroupKind(), name, errs)
		resp := admission.Denied(invalid.Error())
		resp.Result = &invalid.ErrStatus
		return resp.WithWarnings(warnings...)
	}
	return admission.Allowed("").WithWarnings(warnings...)
}

// decodeObject decodes an object as the API server sends it: already pruned to its schema,
// so only spec.config (kept whole) can hold unknown fields, and its parser reports them.
func decodeObject(raw []byte, into any) error {
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("decoding object: %w", err)
	}
	return nil
}
