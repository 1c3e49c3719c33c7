package injector

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// The policy checks the validating webhook runs, and corsmeshctl too: errors reject the
// resource and name the field; warnings accept it and say what is probably wrong.

// ValidatePlugin checks a Plugin. Nothing about a Plugin is invalid to corsmesh, but one it
// does not implement is worth a warning at once, not at the first pod.
func (in *Injector) ValidatePlugin(p *v1alpha1.Plugin) (field.ErrorList, []string) {
	if in.IsCORSPlugin(p) {
		return nil, []string{fmt.Sprintf("corsmesh implements Plugin %q natively as CORS; spec.pipyscript is not run", p.Name)}
	}
	return nil, []string{fmt.Sprintf("corsmesh does not implement Plugin %q (only CORS: name it one of %s or annotate it %s: cors); chains mounting it are reported and it is not applied",
		p.Name, strings.Join(in.opts.CORSPluginNames, ", "), AnnotationImplements)}
}

// ValidatePluginChain checks a PluginChain: selectors that parse and chains that name
// plugins. lookup returns the named Plugin, or nil when it does not exist.
func (in *Injector) ValidatePluginChain(c *v1alpha1.PluginChain, lookup func(name string) *v1alpha1.Plugin) (field.ErrorList, []string) {
	var errs field.ErrorList
	var warnings []string
	spec := field.NewPath("spec")
	opts := metav1validation.LabelSelectorValidationOptions{}
	if s := c.Spec.Selectors.PodSelector; s != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(s, opts, spec.Child("selectors", "podSelector"))...)
	}
	if s := c.Spec.Selectors.NamespaceSelector; s != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(s, opts, spec.Child("selectors", "namespaceSelector"))...)
	}
	for i, chain := range c.Spec.Chains {
		if len(chain.Plugins) == 0 {
			errs = append(errs, field.Required(spec.Child("chains").Index(i).Child("plugins"), "list at least one plugin"))
		}
	}
	mounts, _ := in.mounts(c, func(name string) (*v1alpha1.Plugin, error) { return lookup(name), nil })
	for _, m := range mounts {
		ppath := spec.Child("chains").Index(m.Chain).Child("plugins").Index(m.Plugin)
		switch {
		case m.Name == "":
			errs = append(errs, field.Required(ppath, "a plugin name"))
		case m.State != MountServed:
			warnings = append(warnings, fmt.Sprintf("%s: %s", ppath, m.Message()))
		}
	}
	if c.Spec.Selectors.PodSelector == nil || (len(c.Spec.Selectors.PodSelector.MatchLabels) == 0 && len(c.Spec.Selectors.PodSelector.MatchExpressions) == 0) {
		warnings = append(warnings, "spec.selectors.podSelector selects every pod in every monitored namespace")
	}
	return errs, warnings
}

// ValidatePluginConfig checks a PluginConfig. For a CORS plugin, spec.config must be a
// valid policy: every problem is reported under its path in spec.config.
func (in *Injector) ValidatePluginConfig(c *v1alpha1.PluginConfig, lookup func(name string) *v1alpha1.Plugin) (field.ErrorList, []string) {
	var errs field.ErrorList
	var warnings []string
	spec := field.NewPath("spec")
	if c.Spec.Plugin == "" {
		errs = append(errs, field.Required(spec.Child("plugin"), "the Plugin this configures"))
	}
	for i, ref := range c.Spec.DestinationRefs {
		path := spec.Child("destinationRefs").Index(i)
		if ref.Kind != v1alpha1.DestinationKindService {
			errs = append(errs, field.NotSupported(path.Child("kind"), ref.Kind, []string{v1alpha1.DestinationKindService}))
		}
		if ref.Name == "" {
			errs = append(errs, field.Required(path.Child("name"), "the Service's name"))
		}
		if ref.Namespace != "" && ref.Namespace != c.Namespace {
			warnings = append(warnings, fmt.Sprintf("%s: Service %s/%s is in another namespace than this PluginConfig; it applies all the same", path, ref.Namespace, ref.Name))
		}
	}
	plugin := lookup(c.Spec.Plugin)
	isCORS := plugin != nil && in.IsCORSPlugin(plugin)
	if plugin == nil && c.Spec.Plugin != "" {
		// Allowed, since resources may be applied in any order; validated as CORS if named so.
		isCORS = slices.Contains(in.opts.CORSPluginNames, c.Spec.Plugin)
		warnings = append(warnings, fmt.Sprintf("spec.plugin: Plugin %q does not exist (yet)", c.Spec.Plugin))
	}
	if !isCORS {
		if c.Spec.Plugin != "" {
			warnings = append(warnings, fmt.Sprintf("spec.plugin: corsmesh does not implement Plugin %q; this configuration is not applied", c.Spec.Plugin))
		}
		return errs, warnings
	}
	raw := ConfigDocument(c)
	policy, err := config.ParseCORS(raw)
	if err != nil {
		return append(errs, configErrors(spec.Child("config"), raw, err)...), warnings
	}
	errs = append(errs, publicSuffixWildcards(spec.Child("config"), policy)...)
	for _, w := range policy.Lint("") {
		warnings = append(warnings, "spec.config."+w)
	}
	return errs, warnings
}

// publicSuffixWildcards rejects a wildcard over a public suffix ("https://*.com",
// "https://*.github.io"): every site registered under it would be allowed. localhost is
// the exception, a name that never leaves the machine.
func publicSuffixWildcards(path *field.Path, policy *config.CORS) field.ErrorList {
	var errs field.ErrorList
	for i, o := range policy.AllowOrigins {
		w, err := config.ParseWildcard(o.Wildcard)
		if o.Wildcard == "" || err != nil || !w.Subdomains || w.Host == "localhost" {
			continue
		}
		if suffix, _ := publicsuffix.PublicSuffix(w.Host); suffix == w.Host {
			errs = append(errs, field.Invalid(path.Child("allowOrigins").Index(i).Child("wildcard"), o.Wildcard,
				fmt.Sprintf("%q is a public suffix: the wildcard would allow every site registered under it; name your own domain", w.Host)))
		}
	}
	return errs
}

// configErrors turns the parser's FieldErrors into Kubernetes field errors under path.
func configErrors(path *field.Path, raw []byte, err error) field.ErrorList {
	list, ok := err.(config.ErrorList)
	if !ok {
		return field.ErrorList{field.Invalid(path, string(raw), err.Error())}
	}
	var errs field.ErrorList
	for _, fe := range list {
		// The parser's paths ("allowOrigins[2].regex") already read like field paths.
		errs = append(errs, &field.Error{Type: field.ErrorTypeInvalid, Field: path.Child(fe.Field).String(), BadValue: field.OmitValueType{}, Detail: fe.Detail})
	}
	return errs
}
