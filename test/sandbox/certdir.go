package sandbox

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// dataDirName is the kubelet's symlink to the current payload directory.
const dataDirName = "..data"

// writeVolume replaces the files of dir with files the way the kubelet updates a Secret
// volume (its AtomicWriter): the payload goes into a new hidden, timestamped directory,
// the ..data symlink is swapped to it with one rename, each file name is a symlink through
// ..data, and the previous payload directory is removed. A reader that opens tls.crt and
// then tls.key never sees files from two different payloads unless a swap happens in
// between, exactly as in a pod.
func writeVolume(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	oldTarget, _ := os.Readlink(filepath.Join(dir, dataDirName))

	tsDir, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return fmt.Errorf("creating payload directory: %w", err)
	}
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(files))
	for _, name := range names {
		if strings.Contains(name, "/") || strings.HasPrefix(name, "..") {
			return fmt.Errorf("invalid file name %q", name)
		}
		if err := os.WriteFile(filepath.Join(tsDir, name), files[name], 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}

	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		return fmt.Errorf("creating %s: %w", tmpLink, err)
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataDirName)); err != nil {
		return fmt.Errorf("swapping %s: %w", dataDirName, err)
	}

	for _, name := range names {
		link := filepath.Join(dir, name)
		want := filepath.Join(dataDirName, name)
		if got, err := os.Readlink(link); err == nil && got == want {
			continue
		}
		_ = os.Remove(link + ".tmp")
		if err := os.Symlink(want, link+".tmp"); err != nil {
			return err
		}
		if err := os.Rename(link+".tmp", link); err != nil {
			return err
		}
	}
	// Files of the previous payload that the new one no longer has.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") || files[e.Name()] != nil {
			continue
		}
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(target, dataDirName+"/") {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	if oldTarget != "" && oldTarget != filepath.Base(tsDir) {
		if err := os.RemoveAll(filepath.Join(dir, oldTarget)); err != nil {
			return fmt.Errorf("removing the previous payload: %w", err)
		}
	}
	return nil
}
