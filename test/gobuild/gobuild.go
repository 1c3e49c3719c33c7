// Package gobuild builds this repository's commands for tests: the packages asked for in
// one `go build` per Go module they belong to, so that binaries sharing dependencies
// compile them once, and each in its own module, with its own go.mod's versions.
//
// It imports nothing but the standard library, so a test package that only needs a binary
// does not compile the sandbox's control plane with it.
package gobuild

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// modulePath is the corsmesh module; the repository root is the directory whose go.mod
// declares it.
const modulePath = "github.com/corsmesh/corsmesh"

// RepoRoot returns the corsmesh repository root: the first directory, from the working
// directory up, whose go.mod declares modulePath; failing that, the one this source file
// was compiled from.
func RepoRoot() (string, error) {
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if declares(dir, modulePath) {
				return dir, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		dir := filepath.Join(filepath.Dir(file), "..", "..")
		if declares(dir, modulePath) {
			return filepath.Clean(dir), nil
		}
	}
	return "", fmt.Errorf("no directory above the working directory holds the go.mod of %s", modulePath)
}

// declares reports whether dir's go.mod declares module path.
func declares(dir, path string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == path
		}
	}
	return false
}

// Builder builds packages of one checkout. The zero value builds, from the checkout
// RepoRoot finds, binaries as a plain `go build` does.
type Builder struct {
	// Root is the repository root; RepoRoot's answer when empty.
	Root string
	// Static builds as the images' binaries are built: for Linux without cgo, build
	// paths trimmed and symbols stripped.
	Static bool
}

// Build is Builder{}.Build: plain binaries of the checkout RepoRoot finds.
func Build(ctx context.Context, dir string, pkgs ...string) (map[string]string, error) {
	return Builder{}.Build(ctx, dir, pkgs...)
}

// Build builds pkgs, directories from the repository root such as "cmd/corsproxy" or
// "test/pipyok", into dir and returns each binary's path by the package as given. A
// binary is named after its directory, as `go build -o dir/` names it.
func (b Builder) Build(ctx context.Context, dir string, pkgs ...string) (map[string]string, error) {
	root := b.Root
	if root == "" {
		var err error
		if root, err = RepoRoot(); err != nil {
			return nil, err
		}
	}
	groups, err := byModule(root, pkgs)
	if err != nil {
		return nil, err
	}
	// go build runs in each module's directory: a relative dir is the caller's.
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("go build: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("go build: %w", err)
	}
	for _, g := range groups {
		if err := b.goBuild(ctx, filepath.Join(root, g.module), dir, g.pkgs); err != nil {
			return nil, fmt.Errorf("go build %s: %w", strings.Join(g.given, " "), err)
		}
	}
	bins := make(map[string]string, len(pkgs))
	for _, pkg := range pkgs {
		bin := filepath.Join(dir, filepath.Base(pkg))
		if _, err := os.Stat(bin); err != nil {
			// go build -o DIR/ builds a package that is not a command and writes nothing.
			return nil, fmt.Errorf("go build %s: no binary (is it package main?): %w", pkg, err)
		}
		bins[pkg] = bin
	}
	return bins, nil
}

// goBuild runs one `go build` of pkgs (relative to moduleDir) into dir.
func (b Builder) goBuild(ctx context.Context, moduleDir, dir string, pkgs []string) error {
	args := []string{"build"}
	if b.Static {
		args = append(args, "-trimpath", "-ldflags=-s -w")
	}
	// The trailing separator makes -o a directory even for one package.
	args = append(append(args, "-o", dir+string(filepath.Separator)), pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = moduleDir
	if b.Static {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("in %s: %w\n%s", moduleDir, err, out)
	}
	return nil
}

// module is the packages to build in one Go module.
type module struct {
	module string   // the module's directory, relative to the repository root
	pkgs   []string // the packages, as ./paths relative to the module's directory
	given  []string // the same packages as the caller named them
}

// byModule groups pkgs by the Go module holding them (the nearest go.mod at or above
// each), in the order the modules first appear.
func byModule(root string, pkgs []string) ([]module, error) {
	if len(pkgs) == 0 {
		return nil, errors.New("go build: no package given")
	}
	var groups []module
	names := map[string]string{}
	for _, pkg := range pkgs {
		clean := filepath.Clean(filepath.FromSlash(pkg))
		if !filepath.IsLocal(clean) || clean == "." {
			return nil, fmt.Errorf("go build %q: not a directory inside the repository", pkg)
		}
		name := filepath.Base(clean)
		if other, ok := names[name]; ok {
			return nil, fmt.Errorf("go build %s and %s: both binaries would be named %s", other, pkg, name)
		}
		names[name] = pkg
		mod, err := moduleOf(root, clean)
		if err != nil {
			return nil, fmt.Errorf("go build %s: %w", pkg, err)
		}
		rel, err := filepath.Rel(mod, clean)
		if err != nil {
			return nil, fmt.Errorf("go build %s: %w", pkg, err)
		}
		i := slices.IndexFunc(groups, func(g module) bool { return g.module == mod })
		if i < 0 {
			groups = append(groups, module{module: mod})
			i = len(groups) - 1
		}
		if rel != "." {
			rel = "./" + filepath.ToSlash(rel)
		}
		groups[i].pkgs = append(groups[i].pkgs, rel)
		groups[i].given = append(groups[i].given, pkg)
	}
	return groups, nil
}

// moduleOf returns the directory, relative to root, of the nearest go.mod at or above
// root/pkg.
func moduleOf(root, pkg string) (string, error) {
	for dir := pkg; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(root, dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		if dir == "." {
			return "", fmt.Errorf("no go.mod in %s or above it", filepath.Join(root, pkg))
		}
	}
}
