package guide

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		want    []Step
		wantErr string
	}{{
		name: "bash blocks in order, each with the console block after it",
		doc: "---\ntitle: x\n---\n## Deploy\n\n```bash\nkubectl create namespace curl\n# a comment, not a heading\n```\n" +
			"### Test\n```bash\ncurl -si x\n```\nYou will see:\n```console\nHTTP/1.1 200 OK\n```\n",
		want: []Step{
			{Heading: "Deploy", Line: 6, Script: "kubectl create namespace curl\n# a comment, not a heading\n"},
			{Heading: "Test", Line: 11, Script: "curl -si x\n", Expected: "HTTP/1.1 200 OK\n"},
		},
	}, {
		name: "other languages are skipped, a heading inside a block is text",
		doc:  "# A\n```yaml\n# not a heading\nkind: Pod\n```\n```bash\necho hi\n```\n",
		want: []Step{{Heading: "A", Line: 6, Script: "echo hi\n"}},
	}, {
		name: "heredoc lines that look like fences only close on a bare fence",
		doc:  "```bash\ncat <<EOF\n```yaml\nEOF\n```\n",
		want: []Step{{Line: 1, Script: "cat <<EOF\n```yaml\nEOF\n"}},
	}, {
		name:    "unterminated block",
		doc:     "# A\n```bash\necho hi\n",
		wantErr: "line 2: the bash block is never closed",
	}, {
		name:    "console block with nothing to answer",
		doc:     "```console\nHTTP/1.1 200 OK\n```\n",
		wantErr: "line 1: a console block with no bash block before it",
	}, {
		name:    "two answers for one block",
		doc:     "```bash\ncurl x\n```\n```console\na\n```\n```console\nb\n```\n",
		wantErr: "line 7: a second console block for the bash block of line 1",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.doc)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d steps %+v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("step %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// The guide in the repository: the steps the demo and the node test walk, in its order.
func TestLoadTheGuide(t *testing.T) {
	steps, err := Load(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	var headings, checks []string
	for _, s := range steps {
		headings = append(headings, s.Heading)
		if s.IsCheck() {
			checks = append(checks, s.Script)
		}
	}
	want := "Deploy demo services|Enable plugin policy mode|Declaring a plugin|Setting up plugin-chain|Setting up plugin configuration|Test|Test"
	if got := strings.Join(headings, "|"); got != want {
		t.Errorf("headings = %q, want %q", got, want)
	}
	if len(checks) != 2 || !strings.Contains(checks[0], "kubectl exec ${curl_client}") || !strings.Contains(checks[1], "-X OPTIONS") {
		t.Errorf("checks = %q", checks)
	}
	if !strings.Contains(steps[0].Script, "osm namespace add curl") || !strings.Contains(steps[0].Script, "kubectl wait --for=condition=ready") {
		t.Errorf("first step = %q", steps[0].Script)
	}
}

// fakeTool writes an executable script standing in for kubectl or corsmeshctl: it prints
// its name as invoked and its arguments (pure shell plumbing under test, no cluster).
func fakeTool(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho \"$(basename \"$0\") $*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestShell(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("osm_namespace", "from-the-caller")
	t.Setenv("BASH_ENV", filepath.Join(dir, "nope"))
	sh, err := NewShell(Tools{Kubectl: fakeTool(t, dir, "kubectl-1.37"), Corsmeshctl: fakeTool(t, dir, "corsmeshctl"),
		Kubeconfig: kubeconfig, OSMNamespace: "corsmesh-system", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tests := []struct {
		name   string
		script string
		want   string
		exit   int // 0: succeeds
	}{
		{"osm is corsmeshctl, invoked as osm", "osm namespace add curl", "osm namespace add curl\n", 0},
		{"kubectl is the given one", "kubectl get pods", "kubectl get pods\n", 0},
		{"the guide's variables", `echo "$osm_namespace $KUBECONFIG"`, "corsmesh-system " + kubeconfig + "\n", 0},
		{"heredocs as written", "cat <<EOF\nkind: $osm_namespace\nEOF", "kind: corsmesh-system\n", 0},
		{"the first failing command stops the block", "echo one\nfalse\necho two", "one\n", 1},
		{"an unset variable is an error", "echo $not_set", "", 1},
		{"a failing pipeline fails", "exit 7 | cat\necho after", "", 7},
		{"stderr interleaved", "echo out; echo err >&2", "out\nerr\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var streamed strings.Builder
			got, err := sh.Run(ctx, tt.script, &streamed)
			if code := ExitCode(err); (tt.exit == 0 && err != nil) || (tt.exit != 0 && code != tt.exit) {
				t.Fatalf("err = %v (exit %d), want exit %d; output %q", err, code, tt.exit, got)
			}
			if tt.exit == 1 && tt.want == "" {
				got = "" // bash's own message for the unset variable
			}
			if got != tt.want || (tt.want != "" && streamed.String() != got) {
				t.Errorf("output %q (streamed %q), want %q", got, streamed.String(), tt.want)
			}
		})
	}
	if err := sh.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sh.BinDir()); !os.IsNotExist(err) {
		t.Errorf("Close left %s: %v", sh.BinDir(), err)
	}
}

func TestNewShellRefusesMissingTools(t *testing.T) {
	dir := t.TempDir()
	ok := fakeTool(t, dir, "tool")
	tests := []struct {
		name  string
		tools Tools
		want  string
	}{
		{"no kubectl", Tools{Corsmeshctl: ok, Kubeconfig: ok, OSMNamespace: "x"}, "no kubectl given"},
		{"corsmeshctl missing", Tools{Kubectl: ok, Corsmeshctl: filepath.Join(dir, "absent"), Kubeconfig: ok, OSMNamespace: "x"}, "corsmeshctl: stat"},
		{"no namespace", Tools{Kubectl: ok, Corsmeshctl: ok, Kubeconfig: ok}, "no osm_namespace given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewShell(tt.tools); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to say %q", err, tt.want)
			}
		})
	}
}

func TestSideBySide(t *testing.T) {
	got := SideBySide("guide", "HTTP/1.1 200 OK\nlong-header: x\n", "answer", "HTTP/1.1 200 OK\r\nA: b\r\nC: d\r\n")
	want := "guide           | answer\n" +
		"-----           | ------\n" +
		"HTTP/1.1 200 OK | HTTP/1.1 200 OK\n" +
		"long-header: x  | A: b\n" +
		"                | C: d\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// The restart hint is text from the cluster: only the shapes the webhook writes, with valid
// names, become kubectl arguments, and nothing of it reaches a shell.
func TestRestartCommands(t *testing.T) {
	tests := []struct {
		hint    string
		want    string // commands joined by " ; ", arguments by " "
		wantErr string
	}{
		{hint: "kubectl rollout restart -n pipy deployment/pipy-ok-v1 deployment/pipy-ok-v2",
			want: "rollout restart -n pipy deployment/pipy-ok-v1 deployment/pipy-ok-v2"},
		{hint: "kubectl rollout restart -n a statefulset/db && kubectl delete pod -n a lone-pod # and 3 more workloads",
			want: "rollout restart -n a statefulset/db ; delete pod -n a lone-pod"},
		{hint: "kubectl rollout restart -n pipy deployment/x; rm -rf /", wantErr: `name "x;"`},
		{hint: "kubectl rollout restart -n pipy deployment/x $(reboot)", wantErr: `not deployment|statefulset|daemonset/NAME`},
		{hint: "kubectl delete namespace -n pipy pipy", wantErr: "neither rollout restart nor delete pod"},
		{hint: "kubectl rollout restart -n Pipy deployment/x", wantErr: `namespace "Pipy"`},
		{hint: "kubectl rollout restart -n pipy secret/x", wantErr: `"secret/x" is not deployment`},
		{hint: "sh -c x -n pipy deployment/x y", wantErr: "is not `kubectl rollout restart|delete pod"},
		{hint: "kubectl rollout restart -n pipy", wantErr: "is not `kubectl rollout restart|delete pod"},
	}
	for _, tt := range tests {
		t.Run(tt.hint, func(t *testing.T) {
			cmds, err := restartCommands(tt.hint)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to say %q (commands %q)", err, tt.wantErr, cmds)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range cmds {
				got = append(got, strings.Join(c, " "))
			}
			if g := strings.Join(got, " ; "); g != tt.want {
				t.Errorf("got %q, want %q", g, tt.want)
			}
		})
	}
}
