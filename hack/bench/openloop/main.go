// Command openloop is a constant-rate (open-loop) HTTP load generator for
// hack/bench/proxy.sh: request i is due at start + i/rate whether or not earlier ones have
// been answered, and its latency is measured from that scheduled time, not from when a
// connection became free to send it, so a stalled server is charged for every request it
// delayed (no coordinated omission, unlike a closed-loop tool such as wrk).
//
// It prints one line of key=value pairs: the counts, the achieved rate, latency
// percentiles in microseconds, how late requests were sent (lag: waiting for a free
// connection, i.e. the server was behind, plus the generator's own delay) and the
// generator's own delay alone (gen_lag: if it is large, the load core, not the server,
// could not keep up, and the latencies are not the server's).
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

type sample struct {
	latency  time.Duration // answered - scheduled
	lag      time.Duration // sent - scheduled: the generator's lag plus the wait for a connection
	dispatch time.Duration // queued - scheduled: the generator's own lag
}

func main() {
	target := flag.String("url", "", "target URL, http://IP:port/path")
	method := flag.String("method", "GET", "request method")
	rate := flag.Float64("rate", 1000, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "measured duration (after warm-up)")
	warmup := flag.Duration("warmup", time.Second, "run at the same rate first, not measured")
	conns := flag.Int("conns", 64, "connections (and concurrent requests at most)")
	timeout := flag.Duration("timeout", 5*time.Second, "per-request timeout")
	var headers headerList
	flag.Var(&headers, "H", `request header "Name: value" (repeatable)`)
	flag.Parse()
	if *target == "" || *rate <= 0 || *conns <= 0 {
		fmt.Fprintln(os.Stderr, "openloop: need --url, a positive --rate and --conns")
		os.Exit(2)
	}
	uri := fasthttp.AcquireURI()
	if err := uri.Parse(nil, []byte(*target)); err != nil {
		fmt.Fprintln(os.Stderr, "openloop: --url:", err)
		os.Exit(2)
	}
	client := &fasthttp.HostClient{
		Addr:                          string(uri.Host()),
		MaxConns:                      *conns,
		MaxConnWaitTimeout:            *timeout,
		ReadTimeout:                   *timeout,
		WriteTimeout:                  *timeout,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
	}

	interval := float64(time.Second) / *rate
	total := int(math.Ceil((*warmup + *duration).Seconds() * *rate))
	warmupCount := int((*warmup).Seconds() * *rate)
	// A second of backlog: beyond it the dispatcher blocks, but every request keeps its
	// scheduled time, so the delay is still charged to latency.
	queue := make(chan int, min(total, int(*rate)+1))
	// dispatched[i]: when the dispatcher queued request i, relative to start. How late that
	// was is the generator's own lag; the wait from there to the send is for a free connection.
	dispatched := make([]time.Duration, total)

	var (
		mu           sync.Mutex
		samples      = make([]sample, 0, total-warmupCount)
		errs, non2xx int
		firstErr     error
		lastDone     time.Duration
		wg           sync.WaitGroup
	)
	warmConns(client, *target, *method, headers, *conns)
	start := time.Now()
	scheduled := func(i int) time.Duration { return time.Duration(float64(i) * interval) }

	for w := 0; w < *conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI(*target)
			req.Header.SetMethod(*method)
			for _, h := range headers {
				name, value, _ := strings.Cut(h, ":")
				req.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
			}
			local := make([]sample, 0, (total-warmupCount) / *conns + 16)
			var localErrs, localNon2xx int
			var localFirst error
			var localLast time.Duration
			for i := range queue {
				due := scheduled(i)
				sent := time.Since(start)
				err := client.Do(req, resp)
				done := time.Since(start)
				if i < warmupCount {
					continue
				}
				localLast = max(localLast, done)
				switch {
				case err != nil:
					localErrs++
					if localFirst == nil {
						localFirst = err
					}
				case resp.StatusCode() < 200 || resp.StatusCode() > 299:
					localNon2xx++
				default:
					local = append(local, sample{latency: done - due, lag: sent - due, dispatch: dispatched[i] - due})
				}
			}
			mu.Lock()
			samples = append(samples, local...)
			errs += localErrs
			non2xx += localNon2xx
			if firstErr == nil {
				firstErr = localFirst
			}
			lastDone = max(lastDone, localLast)
			mu.Unlock()
		}()
	}

	// Dispatch: hand out every request that is due, then sleep until the next one.
	for i := 0; i < total; {
		now := time.Since(start)
		due := min(total, int(float64(now)/interval)+1)
		for ; i < due; i++ {
			dispatched[i] = time.Since(start)
			queue <- i
		}
		if i < total {
			if d := scheduled(i) - time.Since(start); d > 0 {
				time.Sleep(d)
			}
		}
	}
	close(queue)
	wg.Wait()

	measured := total - warmupCount
	window := lastDone - scheduled(warmupCount)
	if window <= 0 {
		window = *duration
	}
	lat := make([]time.Duration, len(samples))
	lag := make([]time.Duration, len(samples))
	disp := make([]time.Duration, len(samples))
	for i, s := range samples {
		lat[i], lag[i], disp[i] = s.latency, s.lag, s.dispatch
	}
	slices.Sort(lat)
	slices.Sort(lag)
	slices.Sort(disp)
	us := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond)) }
	fmt.Printf("openloop url=%s method=%s rate=%.0f duration=%s conns=%d scheduled=%d ok=%d errors=%d non2xx=%d achieved_rps=%.1f p50_us=%s p90_us=%s p99_us=%s p999_us=%s max_us=%s lag_p99_us=%s lag_max_us=%s gen_lag_p99_us=%s gen_lag_max_us=%s\n",
		*target, *method, *rate, *duration, *conns, measured, len(samples), errs, non2xx,
		float64(len(samples)+non2xx)/window.Seconds(),
		us(pct(lat, 50)), us(pct(lat, 90)), us(pct(lat, 99)), us(pct(lat, 99.9)), us(pct(lat, 100)),
		us(pct(lag, 99)), us(pct(lag, 100)), us(pct(disp, 99)), us(pct(disp, 100)))
	if firstErr != nil {
		fmt.Fprintln(os.Stderr, "openloop: first error:", firstErr)
	}
	if errs > 0 || non2xx > 0 || len(samples) == 0 {
		os.Exit(1)
	}
}

// pct is the nearest-rank percentile of sorted durations.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}

// warmConns opens the connections before the clock starts, so dialing is not measured.
func warmConns(client *fasthttp.HostClient, target, method string, headers headerList, conns int) {
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(target)
			req.Header.SetMethod(method)
			for _, h := range headers {
				name, value, _ := strings.Cut(h, ":")
				req.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
			}
			_ = client.Do(req, resp)
		}()
	}
	wg.Wait()
}
