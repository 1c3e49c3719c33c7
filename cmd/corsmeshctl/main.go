// Command corsmeshctl is corsmesh's command line:
//
//	corsmeshctl inject -f FILE|- [--policies DIR]... [--from-cluster] ...
//	corsmeshctl namespace add|remove NS... [--mesh-name osm] ...
//	corsmeshctl check [--namespace corsmesh-system] ...
//	corsmeshctl explain (--pod NAME | --service NAME) --origin ORIGIN ...
//
// inject runs the webhook's injector offline over manifests; namespace opts namespaces in
// and out of the mesh as `osm namespace` does; check diagnoses an installation.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `corsmeshctl: corsmesh's command line

Usage:
  corsmeshctl inject -f FILE|- [--policies DIR|FILE]... [--from-cluster] [--kubeconfig PATH]
                     [--mesh-name osm] [--namespace default] [--proxy-image IMAGE]
                     [--init-image IMAGE] [--native-sidecars=true|false]
      Inject the CORS sidecar into the Pods and pod templates of manifests, offline.
  corsmeshctl namespace add NS... [--mesh-name osm] [--disable-sidecar-injection] [--force] [--kubeconfig PATH]
  corsmeshctl namespace remove NS... [--mesh-name osm] [--kubeconfig PATH]
      Opt namespaces in and out of the mesh (like osm namespace add|remove).
  corsmeshctl check [--namespace corsmesh-system] [--mesh-name osm] [--kubeconfig PATH]
      Check the installation: CRDs, webhook configurations, certificates, reachability.
  corsmeshctl explain (--pod NAME | --service NAME) [-n NS] --origin ORIGIN [--method M]
                      [--header H]... [--host H] [--port P] [-f FILE]... [--from-cluster]
  corsmeshctl explain --diff FILE --origin ORIGIN... [-f FILE]... [--from-cluster]
      Would the proxy allow this request, by which PluginConfig entry, with which headers.

Run corsmeshctl COMMAND -h for a command's flags.
`

// run is the whole command, in-process: the exit code is 0 on success, 1 on failure, 2 on
// bad usage.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "inject":
		return runInject(ctx, args[1:], stdin, stdout, stderr)
	case "namespace", "ns":
		return runNamespace(ctx, args[1:], stdin, stdout, stderr)
	case "check":
		return runCheck(ctx, args[1:], stdin, stdout, stderr)
	case "explain":
		return runExplain(ctx, args[1:], stdin, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "corsmeshctl: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// parseFlags parses flags that may come before, between or after positional arguments
// (`namespace add pipy --mesh-name osm`) and returns the positional ones. A code of -1 means
// go on; otherwise it is the exit code (0 for -h, 2 for bad flags).
func parseFlags(fs *flag.FlagSet, args []string) ([]string, int) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0
			}
			return nil, 2
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, -1
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// newClient builds the API client for --kubeconfig (or $KUBECONFIG, ~/.kube/config,
// in-cluster). Tests replace it with a fake.
var newClient = func(kubeconfig string) (client.Client, error) {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err == nil {
		return cfg, nil
	}
	if kubeconfig == "" && clientcmd.IsEmptyConfig(err) {
		if in, inErr := rest.InClusterConfig(); inErr == nil {
			return in, nil
		}
	}
	return nil, fmt.Errorf("loading kubeconfig: %w", err)
}

// Scheme has the types corsmeshctl reads and writes: the webhook's (Kubernetes' and the
// plugin resources), the CRDs and cert-manager's Certificates and Issuers that check reads. It does not import the webhook package,
// so the CLI stays light.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, configv1alpha2.AddToScheme, apiextensionsv1.AddToScheme, cmapi.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}
