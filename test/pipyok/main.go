// Command pipyok stands in for the seed guide's pipy-ok deployments (the flomesh/pipy image
// is not available here): an HTTP server answering every request with "Hi, I am PIPY-OK v1!".
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	message := flag.String("message", "Hi, I am PIPY-OK v1!", "the body of every response")
	flag.Parse()
	srv := &http.Server{
		Addr:              *listen,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, *message)
		}),
	}
	fmt.Fprintln(os.Stderr, "pipyok listening on", *listen)
	log.Fatal(srv.ListenAndServe())
}
