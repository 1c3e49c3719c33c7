package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// sustainedOrder is the order of the sustained phases, replay and ours first and last
// alike, so that a machine getting busier or quieter over the minute favours neither.
var sustainedOrder = []string{"replay", "ours", "no-op", "ours", "replay", "no-op"}

// sustainedResult is one mode's sustained phases, summed.
type sustainedResult struct {
	pods    int
	elapsed time.Duration
	cpu     cpuSample
}

// sustain creates pods in one mode at a time, back to back for d per phase, after the
// interleaved rounds: a second estimate beside the rounds' latencies, from throughput and
// the CPU each process spends per pod when one kind of pod follows another, with nothing
// interleaved to wake or idle the webhooks between pods.
func sustain(ctx context.Context, cs kubernetes.Interface, comps *components, d time.Duration) (map[string]*sustainedResult, error) {
	out := map[string]*sustainedResult{}
	nsOf := map[string]string{}
	for _, m := range modes {
		nsOf[m.name] = m.ns
	}
	logf("sustained: %s per phase, in the order %s", d, strings.Join(sustainedOrder, ", "))
	for _, name := range sustainedOrder {
		res := out[name]
		if res == nil {
			res = &sustainedResult{cpu: cpuSample{procs: map[string]time.Duration{}}}
			out[name] = res
		}
		start, before := time.Now(), comps.sample()
		for time.Since(start) < d {
			if _, err := cs.CoreV1().Pods(nsOf[name]).Create(ctx, benchPod(nil), metav1.CreateOptions{}); err != nil {
				return nil, fmt.Errorf("sustained pod in %s: %w", nsOf[name], err)
			}
			res.pods++
		}
		res.elapsed += time.Since(start)
		res.cpu = res.cpu.add(comps.sample().sub(before))
	}
	return out, nil
}

// writeSustained reports the sustained phases.
func (r *report) writeSustained(p func(string, ...any)) {
	if len(r.sustained) == 0 {
		return
	}
	p("### Sustained")
	p("")
	p("After the rounds, pods created back to back in one mode at a time for %s per phase, in the order %s (%s).", r.opts.sustained, strings.Join(sustainedOrder, ", "), "unchecked: the rounds' checks cover the webhooks' behaviour")
	p("")
	names := r.comps.names()
	p("| mode | pods | pods/s | %s | whole machine |", strings.Join(names, " ms/pod | ")+" ms/pod")
	p("| --- | --- | --- |%s --- |", strings.Repeat(" --- |", len(names)))
	rate := map[string]float64{}
	for _, m := range modes {
		res, ok := r.sustained[m.name]
		if !ok {
			continue
		}
		n := float64(max(1, res.pods))
		rate[m.name] = float64(res.pods) / res.elapsed.Seconds()
		var cells []string
		for _, name := range names {
			cells = append(cells, fmt.Sprintf("%.2f", float64(res.cpu.procs[name])/1e6/n))
		}
		p("| %s | %d | %.1f | %s | %.2f |", m.name, res.pods, rate[m.name], strings.Join(cells, " | "), float64(res.cpu.machine)/1e6/n)
	}
	p("")
	if rate["ours"] > 0 {
		p("Time per pod, ours / replay: %.3f; ours / no-op: %.3f.", rate["replay"]/rate["ours"], rate["no-op"]/rate["ours"])
		p("")
	}
	ours, noop := r.sustained["ours"], r.sustained["no-op"]
	if ours != nil && noop != nil && ours.pods > 0 && noop.pods > 0 {
		p(aboveNoop, float64(ours.cpu.procs[webhookProcName])/1e6/float64(ours.pods)-float64(noop.cpu.procs[noopHostName])/1e6/float64(noop.pods))
		p("")
	}
}

// aboveNoop reports corsmesh-webhook's CPU above the floor: what any Go webhook's process
// pays here per call, the no-op's, is not corsmesh's work.
const aboveNoop = "corsmesh-webhook's CPU per injected pod above the no-op webhook's process per no-op pod: %+.2f ms."
