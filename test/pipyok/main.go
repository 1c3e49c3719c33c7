// Command pipyok stands in for the seed guide's pipy-ok deployments (the flomesh/pipy image
// is not available here): an HTTP server answering every request with "Hi, I am PIPY-OK v1!".
// With --tls it serves HTTPS with a certificate made at start, for an app the proxy must
// pass through untouched.
//
// Installed as `pipy` (the sandbox's flomesh/pipy stand-in image), it runs the guide's
// `pipy -e "pipy().listen(PORT).serveHTTP(new Message('TEXT'))"` and refuses any other script.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	message := flag.String("message", "Hi, I am PIPY-OK v1!", "the body of every response")
	useTLS := flag.Bool("tls", false, "serve HTTPS with a self-signed certificate")
	script := flag.String("e", "", "a PipyJS one-liner, as `pipy -e`: only pipy().listen(PORT).serveHTTP(new Message('TEXT'))")
	flag.Parse()
	if *script != "" {
		s, err := parsePipyScript(*script)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		*listen, *message = fmt.Sprintf(":%d", s.Port), s.Message
	}
	srv := &http.Server{
		Addr:              *listen,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			if *script != "" {
				// Pipy's answer carries only content-length and connection.
				w.Header()["Date"] = nil
				w.Header()["Content-Type"] = nil
				w.Header().Set("Connection", "keep-alive")
			}
			_, _ = io.WriteString(w, *message)
		}),
	}
	if *useTLS {
		cert, err := selfSigned()
		if err != nil {
			log.Fatal(err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	// The kubelet stops a container with SIGTERM: Go's default for it is exit status 2,
	// which shows a deleted pod as Error. Pipy itself drains and exits 0.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := serve(ctx, srv, *useTLS); err != nil {
		log.Fatal(err)
	}
}

// serve runs srv until it fails or ctx is done, then lets open requests finish.
func serve(ctx context.Context, srv *http.Server, useTLS bool) error {
	fmt.Fprintln(os.Stderr, "pipyok listening on", srv.Addr, "tls:", useTLS)
	failed := make(chan error, 1)
	go func() {
		if useTLS {
			failed <- srv.ListenAndServeTLS("", "")
		} else {
			failed <- srv.ListenAndServe()
		}
	}()
	select {
	case err := <-failed:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pipyok"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"pipyok"},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
