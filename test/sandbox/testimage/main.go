// Command testimage is the one program in the sandbox's own minimal images: the pod
// sandbox's pause container (`testimage pause`) and a plain app (`testimage serve`) that
// answers HTTP and prints a line per request, so that a test can see a real kubelet run
// a pod, exec into it and read its logs without any image from a registry.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	mode := "serve"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "pause":
		// PID 1 of the pod sandbox: holds the namespaces until the kubelet stops it.
		<-ctx.Done()
	case "serve":
		addr := ":8080"
		if len(os.Args) > 2 {
			addr = os.Args[2]
		}
		if err := serve(ctx, addr); err != nil {
			fmt.Fprintln(os.Stderr, "testimage:", err)
			os.Exit(1)
		}
	case "echo":
		// For exec: prints its arguments.
		fmt.Println(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "testimage: unknown mode %q (pause, serve, echo)\n", mode)
		os.Exit(2)
	}
}

func serve(ctx context.Context, addr string) error {
	host, _ := os.Hostname()
	srv := &http.Server{
		Addr:              addr,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Printf("request %s %s\n", r.Method, r.URL.Path)
			fmt.Fprintf(w, "hello from %s\n", host)
		}),
	}
	fmt.Printf("listening on %s\n", addr)
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}
