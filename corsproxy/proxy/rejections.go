package proxy

import (
	"cmp"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corsmesh/corsmesh/corsproxy/cors"
)

// Bounds on what one refused request can make the proxy keep or write: clients choose
// the Origin and Host values, so both are cut, and the table of frequent origins has a
// fixed number of rows however many distinct origins arrive.
const (
	refusalTopN        = 64  // rows in the frequent-origins table
	refusalValueLimit  = 128 // bytes of an Origin or Host kept or logged
	refusalLogBurst    = 5   // log lines at once
	refusalLogInterval = time.Second / 5
)

// Refusals makes refused origins visible: a count per reason (a fixed set, so a bounded
// metric label), a rate-limited log line per refusal, and the most frequent refused
// origins since start for /debug/cors. Its zero value is ready to use.
type Refusals struct {
	byReason   [len(refusalReasons)]atomic.Uint64
	reportOnly [2]atomic.Uint64 // would allow, would refuse

	mu     sync.Mutex
	start  time.Time
	top    map[refusalKey]*refusalRow
	tokens float64
	last   time.Time // of the token refill
	held   uint64    // lines not logged since the last one that was
}

var refusalReasons = [...]cors.Reason{cors.NoReason, cors.ReasonNotAllowed, cors.ReasonInvalid, cors.ReasonNull, cors.ReasonSeveralOrigins, cors.ReasonTooLong}

type refusalKey struct {
	origin     string
	reason     cors.Reason
	port       int32
	reportOnly bool
}

type refusalRow struct {
	key   refusalKey
	host  string
	count uint64
	// overcount bounds how much of count belongs to rows this one replaced (Space-Saving:
	// a new origin in a full table takes the smallest row's place and count).
	overcount uint64
	last      time.Time
}

// Refusal is one refused request, as the proxy saw it.
type Refusal struct {
	Origin, Host []byte
	Method       []byte
	Port         int32
	Reason       cors.Reason
	ReportOnly   bool // the policy is report-only: the request was not refused, only would be
}

// started notes when counting began, for /debug/cors.
func (r *Refusals) started(now time.Time) {
	r.mu.Lock()
	if r.start.IsZero() {
		r.start = now
	}
	r.mu.Unlock()
}

// observeReportOnly counts a report-only decision.
func (r *Refusals) observeReportOnly(allowed bool) {
	if allowed {
		r.reportOnly[0].Add(1)
	} else {
		r.reportOnly[1].Add(1)
	}
}

// record counts a refusal, remembers its origin and logs it unless too many were logged
// just now. Report-only refusals are counted by observeReportOnly, not here.
func (r *Refusals) record(logger *slog.Logger, f Refusal, now time.Time) {
	if !f.ReportOnly && int(f.Reason) < len(r.byReason) {
		r.byReason[f.Reason].Add(1)
	}
	origin, host := cut(f.Origin), cut(f.Host)
	r.mu.Lock()
	if r.start.IsZero() {
		r.start = now
	}
	key := refusalKey{origin: origin, reason: f.Reason, port: f.Port, reportOnly: f.ReportOnly}
	r.remember(key, host, now)
	logIt, suppressed := r.allowLog(now)
	r.mu.Unlock()
	if !logIt {
		return
	}
	attrs := []any{"origin", origin, "reason", f.Reason.String(), "port", f.Port, "host", host, "method", cut(f.Method)}
	if f.ReportOnly {
		attrs = append(attrs, "report_only", true)
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	msg := "CORS origin refused"
	if f.ReportOnly {
		msg = "CORS origin would be refused (report-only)"
	}
	logger.Info(msg, attrs...)
}

// remember updates the frequent-origins table (Space-Saving): a known row counts one
// more; a new origin gets a free row or replaces the least counted one, taking over its
// count, so an origin counted often is never pushed out by many rare ones.
func (r *Refusals) remember(key refusalKey, host string, now time.Time) {
	if r.top == nil {
		r.top = make(map[refusalKey]*refusalRow, refusalTopN)
	}
	if row := r.top[key]; row != nil {
		row.count++
		row.host, row.last = host, now
		return
	}
	if len(r.top) < refusalTopN {
		r.top[key] = &refusalRow{key: key, host: host, count: 1, last: now}
		return
	}
	var least *refusalRow
	for _, row := range r.top {
		if least == nil || row.count < least.count {
			least = row
		}
	}
	delete(r.top, least.key)
	r.top[key] = &refusalRow{key: key, host: host, count: least.count + 1, overcount: least.count, last: now}
}

// allowLog is a token bucket: refusalLogBurst lines at once, then one per
// refusalLogInterval. It returns how many lines were held back before this one.
func (r *Refusals) allowLog(now time.Time) (bool, uint64) {
	if r.last.IsZero() {
		r.tokens = refusalLogBurst
	} else {
		r.tokens = min(refusalLogBurst, r.tokens+float64(now.Sub(r.last))/float64(refusalLogInterval))
	}
	r.last = now
	if r.tokens < 1 {
		r.held++
		return false, 0
	}
	r.tokens--
	held := r.held
	r.held = 0
	return true, held
}

// cut copies at most refusalValueLimit bytes of a client's value.
func cut(b []byte) string {
	if len(b) > refusalValueLimit {
		return string(b[:refusalValueLimit]) + "..."
	}
	return string(b)
}

// DebugCORS is the document /debug/cors serves.
type DebugCORS struct {
	Since      time.Time         `json:"since"`
	Refused    map[string]uint64 `json:"refused"`
	ReportOnly struct {
		WouldAllow  uint64 `json:"wouldAllow"`
		WouldRefuse uint64 `json:"wouldRefuse"`
	} `json:"reportOnly"`
	// Top are the most frequent refused origins, most frequent first; at most TopLimit.
	Top      []DebugOrigin `json:"top"`
	TopLimit int           `json:"topLimit"`
}

// DebugOrigin is one row of /debug/cors.
type DebugOrigin struct {
	Origin     string    `json:"origin"`
	Reason     string    `json:"reason"`
	Port       int32     `json:"port"`
	Host       string    `json:"host"`
	Count      uint64    `json:"count"`
	Overcount  uint64    `json:"overcount,omitempty"`
	ReportOnly bool      `json:"reportOnly,omitempty"`
	Last       time.Time `json:"last"`
}

// Snapshot returns the counts and the table, most frequent first.
func (r *Refusals) Snapshot() DebugCORS {
	var d DebugCORS
	d.Refused = make(map[string]uint64, len(refusalReasons)-1)
	for i, reason := range refusalReasons[1:] {
		d.Refused[reason.String()] = r.byReason[i+1].Load()
	}
	d.ReportOnly.WouldAllow, d.ReportOnly.WouldRefuse = r.reportOnly[0].Load(), r.reportOnly[1].Load()
	d.TopLimit = refusalTopN
	r.mu.Lock()
	d.Since = r.start
	d.Top = make([]DebugOrigin, 0, len(r.top))
	for _, row := range r.top {
		d.Top = append(d.Top, DebugOrigin{Origin: row.key.origin, Reason: row.key.reason.String(), Port: row.key.port, Host: row.host,
			Count: row.count, Overcount: row.overcount, ReportOnly: row.key.reportOnly, Last: row.last})
	}
	r.mu.Unlock()
	slices.SortFunc(d.Top, func(a, b DebugOrigin) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Origin, b.Origin), cmp.Compare(a.Port, b.Port))
	})
	return d
}

// writeDebug writes the snapshot as indented JSON.
func (r *Refusals) writeDebug(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.Snapshot())
}

// writeMetrics writes the refusal counters in the Prometheus text format.
func (r *Refusals) writeMetrics(w io.Writer) {
	writeLine := func(s string) { _, _ = io.WriteString(w, s) }
	writeLine("# HELP corsproxy_refused_origins_total Requests with an Origin the policy refused, by reason.\n")
	writeLine("# TYPE corsproxy_refused_origins_total counter\n")
	for i, reason := range refusalReasons[1:] {
		writeLine("corsproxy_refused_origins_total{reason=\"" + reason.String() + "\"} " + uitoa(r.byReason[i+1].Load()) + "\n")
	}
	writeLine("# HELP corsproxy_report_only_total Requests under a report-only policy, by what the policy would do.\n")
	writeLine("# TYPE corsproxy_report_only_total counter\n")
	writeLine("corsproxy_report_only_total{outcome=\"would_allow\"} " + uitoa(r.reportOnly[0].Load()) + "\n")
	writeLine("corsproxy_report_only_total{outcome=\"would_refuse\"} " + uitoa(r.reportOnly[1].Load()) + "\n")
}

func uitoa(n uint64) string { return strconv.FormatUint(n, 10) }
