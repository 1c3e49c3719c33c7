package gobuild

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// checkout writes a repository of two modules, each with commands printing their names.
func checkout(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"go.mod":            "module example.com/root\n\ngo 1.22\n",
		"cmd/one/main.go":   "package main\n\nfunc main() { println(\"one\") }\n",
		"cmd/two/main.go":   "package main\n\nfunc main() { println(\"two\") }\n",
		"lib/lib.go":        "package lib\n",
		"sub/go.mod":        "module example.com/sub\n\ngo 1.22\n",
		"sub/three/main.go": "package main\n\nfunc main() { println(\"three\") }\n",
		"sub/main.go":       "package main\n\nfunc main() { println(\"sub\") }\n",
	}
	for name, content := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestByModule(t *testing.T) {
	root := checkout(t)
	tests := []struct {
		name    string
		pkgs    []string
		want    []module
		wantErr string
	}{
		{
			name: "one module",
			pkgs: []string{"cmd/one", "cmd/two"},
			want: []module{{module: ".", pkgs: []string{"./cmd/one", "./cmd/two"}, given: []string{"cmd/one", "cmd/two"}}},
		},
		{
			name: "two modules, in the order first named",
			pkgs: []string{"sub/three", "cmd/one", "sub", "cmd/two/"},
			want: []module{
				{module: "sub", pkgs: []string{"./three", "."}, given: []string{"sub/three", "sub"}},
				{module: ".", pkgs: []string{"./cmd/one", "./cmd/two"}, given: []string{"cmd/one", "cmd/two/"}},
			},
		},
		{name: "nothing", wantErr: "no package given"},
		{name: "outside the repository", pkgs: []string{"../cmd/one"}, wantErr: "not a directory inside the repository"},
		{name: "absolute", pkgs: []string{"/cmd/one"}, wantErr: "not a directory inside the repository"},
		{name: "the root itself", pkgs: []string{"."}, wantErr: "not a directory inside the repository"},
		{name: "two binaries of one name", pkgs: []string{"cmd/one", "sub/one"}, wantErr: "both binaries would be named one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := byModule(root, tt.pkgs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestBuildRunsEachModulesCommands builds commands of two modules with the real go
// command and runs each binary.
func TestBuildRunsEachModulesCommands(t *testing.T) {
	root := checkout(t)
	dir := t.TempDir()
	bins, err := Builder{Root: root}.Build(t.Context(), dir, "cmd/one", "sub/three", "sub")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cmd/one": "one", "sub/three": "three", "sub": "sub"}
	for pkg, name := range want {
		if bins[pkg] != filepath.Join(dir, name) {
			t.Errorf("binary of %s at %q, want %q", pkg, bins[pkg], filepath.Join(dir, name))
			continue
		}
		out, err := exec.Command(bins[pkg]).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != name {
			t.Errorf("%s printed %q (%v), want %q", bins[pkg], out, err, name)
		}
	}
	if len(bins) != len(want) {
		t.Errorf("got %d binaries, want %d: %v", len(bins), len(want), bins)
	}
}

// A relative output directory is the caller's, not the module's the build runs in.
func TestBuildIntoRelativeDir(t *testing.T) {
	root := checkout(t)
	t.Chdir(t.TempDir())
	bins, err := Builder{Root: root}.Build(t.Context(), "out", "sub/three")
	if err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(wd, "out", "three"); bins["sub/three"] != want {
		t.Fatalf("binary at %q, want %q", bins["sub/three"], want)
	}
	if _, err := os.Stat(filepath.Join("out", "three")); err != nil {
		t.Fatal(err)
	}
}

func TestBuildErrorNamesPackageAndOutput(t *testing.T) {
	root := checkout(t)
	if err := os.WriteFile(filepath.Join(root, "cmd", "two", "main.go"), []byte("package main\n\nfunc main() { undefinedThing() }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Builder{Root: root}.Build(t.Context(), t.TempDir(), "cmd/one", "cmd/two")
	if err == nil || !strings.Contains(err.Error(), "go build cmd/one cmd/two") || !strings.Contains(err.Error(), "undefinedThing") {
		t.Fatalf("err %v, want one naming the packages and holding the compiler's output", err)
	}
	_, err = Builder{Root: root}.Build(t.Context(), t.TempDir(), "cmd/one", "lib")
	if err == nil || !strings.Contains(err.Error(), "go build lib: no binary") {
		t.Fatalf("err %v, want one saying lib built no binary", err)
	}
}

// TestStaticStripsSymbols checks that Static builds as the images do: no symbol table.
func TestStaticStripsSymbols(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("skipping: Static builds Linux binaries")
	}
	root := checkout(t)
	for _, static := range []bool{false, true} {
		bins, err := Builder{Root: root, Static: static}.Build(t.Context(), t.TempDir(), "cmd/one")
		if err != nil {
			t.Fatal(err)
		}
		f, err := elf.Open(bins["cmd/one"])
		if err != nil {
			t.Fatal(err)
		}
		hasSymbols := f.Section(".symtab") != nil
		f.Close()
		if hasSymbols == static {
			t.Errorf("Static %v: symbol table %v", static, hasSymbols)
		}
	}
}

func TestRepoRootFindsThisRepository(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "test", "gobuild", "gobuild.go")); err != nil {
		t.Fatalf("RepoRoot %s does not hold this package: %v", root, err)
	}
}
