// Command baremanager is the memory floor the bench measures corsmesh-webhook against: a
// controller-runtime manager as corsmesh-webhook starts one (webhook server, metrics,
// health probes, no leader election), serving admission webhooks that allow everything,
// with no cache and no controller. Its VmRSS is what any webhook built on
// controller-runtime pays before it holds a single object: mostly the pages of a binary
// that links client-go's scheme, every API group of it, through the manager.
//
// It takes the flags of corsmesh-webhook that the bench passes, so the bench starts both
// alike.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "baremanager:", err)
		os.Exit(1)
	}
}

func run() error {
	var certDir, host, metricsAddr, healthAddr string
	var port int
	var leaderElect bool
	flag.StringVar(&certDir, "cert-dir", "", "directory with tls.crt and tls.key")
	flag.StringVar(&host, "host", "", "webhook listen host")
	flag.IntVar(&port, "port", 9443, "webhook listen port")
	flag.StringVar(&metricsAddr, "metrics-addr", "0", "metrics listen address")
	flag.StringVar(&healthAddr, "health-addr", "0", "health probes listen address")
	flag.BoolVar(&leaderElect, "leader-elect", false, "accepted for corsmesh-webhook's command line; must be false")
	flag.Parse()
	if leaderElect {
		return fmt.Errorf("--leader-elect: a bare manager elects nothing")
	}
	cfg, err := ctrl.GetConfig() // --kubeconfig: controller-runtime's own flag
	if err != nil {
		return fmt.Errorf("reading the kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: healthAddr,
		WebhookServer:          webhook.NewServer(webhook.Options{Host: host, Port: port, CertDir: certDir}),
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	hooks := mgr.GetWebhookServer() // adds it to the manager's runnables
	allow := &webhook.Admission{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})}
	for _, path := range []string{"/mutate-pods", "/validate-policies"} {
		hooks.Register(path, allow)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", hooks.StartedChecker()); err != nil {
		return err
	}
	ctx := ctrl.SetupSignalHandler()
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running the manager: %w", err)
	}
	return nil
}
