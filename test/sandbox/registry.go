package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// imageRegistry is an OCI registry in the test process (go-containerregistry's
// pkg/registry, in memory). The node's containerd has it as the mirror of every registry
// the manifests and the guide name (docker.io, ghcr.io, registry.k8s.io), so pods pull
// their images as in a cluster, pull policy Always included, and no registry on the
// internet is ever asked.
type imageRegistry struct {
	// Addr is host:port, reachable from the node's network namespace.
	Addr string
	srv  *http.Server
	done chan struct{}
}

// mirroredRegistries are the registries containerd sends to the in-process one.
var mirroredRegistries = []string{"docker.io", "ghcr.io", "registry.k8s.io", "quay.io"}

func startRegistry(ip string) (*imageRegistry, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, fmt.Errorf("starting the image registry: %w", err)
	}
	r := &imageRegistry{
		Addr: ln.Addr().String(),
		srv: &http.Server{
			Handler:           registry.New(registry.Logger(log.New(io.Discard, "", 0))),
			ReadHeaderTimeout: 30 * time.Second,
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(r.done)
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("sandbox: image registry: %v", err)
		}
	}()
	return r, nil
}

// Push stores img under ref as the registry ref names it would serve it
// (registry.k8s.io/pause:3.10 is served as pause:3.10, docker.io/curlimages/curl as
// curlimages/curl, docker.io/busybox as library/busybox).
func (r *imageRegistry) Push(ctx context.Context, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image name %q: %w", ref, err)
	}
	dst, err := name.NewTag(fmt.Sprintf("%s/%s:%s", r.Addr, tag.RepositoryStr(), tag.TagStr()), name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(dst, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("pushing %s into the sandbox registry: %w", ref, err)
	}
	return nil
}

func (r *imageRegistry) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.srv.Shutdown(ctx)
	<-r.done
	return err
}
