// Package guide runs osm-edge's CORS plugin guide verbatim: it reads the guide's ```bash
// blocks and the ```console answers that follow them from the markdown at run time, and
// runs each block with bash as a user would paste it, with kubectl and an `osm` that is
// corsmeshctl on PATH. Walk runs the whole guide against a sandbox with a node.
package guide

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/corsmesh/corsmesh/test/seedcheck"
)

// Step is one ```bash block of the guide and the answer the guide shows for it.
type Step struct {
	// Heading is the nearest heading above the block, without its #s.
	Heading string
	// Line is the 1-based line of the block's opening fence.
	Line int
	// Script is the block's text, as written.
	Script string
	// Expected is the ```console block that follows it before the next ```bash block,
	// empty when the guide shows none.
	Expected string
}

// IsCheck reports whether the guide shows what the step prints.
func (s Step) IsCheck() bool { return s.Expected != "" }

// Load reads the guide's steps from the copy under repoRoot.
func Load(repoRoot string) ([]Step, error) {
	path := filepath.Join(repoRoot, seedcheck.GuidePath)
	doc, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the guide: %w", err)
	}
	steps, err := Parse(string(doc))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", seedcheck.GuidePath, err)
	}
	return steps, nil
}

// Parse returns the ```bash blocks of a markdown document in order, each with the
// ```console block that answers it. Other fenced blocks are skipped. An unterminated
// fence, or a console block with no bash block before it or a second one for the same
// bash block, is an error naming its line: a guide that changed shape must not run half.
func Parse(doc string) ([]Step, error) {
	var (
		steps     []Step
		heading   string
		fence     string // the open fence's info string; "" outside a block
		fenceLine int
		body      strings.Builder
		answered  bool // the last bash block already has its console block
	)
	sc := bufio.NewScanner(strings.NewReader(doc))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if fence == "" {
			switch {
			case strings.HasPrefix(trimmed, "```"):
				fence, fenceLine = strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), n
				if fence == "" {
					fence = "text" // a bare fence still opens a block
				}
				body.Reset()
			case strings.HasPrefix(line, "#"):
				heading = strings.TrimSpace(strings.TrimLeft(line, "#"))
			}
			continue
		}
		if trimmed != "```" {
			body.WriteString(line)
			body.WriteByte('\n')
			continue
		}
		switch fence {
		case "bash", "sh", "shell":
			steps = append(steps, Step{Heading: heading, Line: fenceLine, Script: body.String()})
			answered = false
		case "console":
			if len(steps) == 0 {
				return nil, fmt.Errorf("line %d: a console block with no bash block before it", fenceLine)
			}
			if answered {
				return nil, fmt.Errorf("line %d: a second console block for the bash block of line %d", fenceLine, steps[len(steps)-1].Line)
			}
			steps[len(steps)-1].Expected = body.String()
			answered = true
		}
		fence = ""
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if fence != "" {
		return nil, fmt.Errorf("line %d: the %s block is never closed", fenceLine, fence)
	}
	return steps, nil
}
