package ociarchive

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/corsmesh/corsmesh/hack/images/rootfs"
)

func testImage(t *testing.T) (v1.Image, name.Tag) {
	t.Helper()
	fs := rootfs.New()
	if err := fs.File("/usr/local/bin/app", []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	layer, err := fs.Tar()
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(layer, v1.Config{User: "1500:1500", Entrypoint: []string{"/usr/local/bin/app"}}, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	return img, name.MustParseReference("ghcr.io/corsmesh/app:v0.1.0").(name.Tag)
}

func writeArchive(t *testing.T, img v1.Image, ref name.Tag) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, ref, img); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "app.tar")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, buf.Bytes()
}

// TestArchiveReadersAgree reads one archive three ways: as an OCI layout
// (go-containerregistry's layout package, what containerd's importer
// follows), as a `docker save` tarball (its tarball package, what docker load
// follows), and with Read. All must see the image that was written.
func TestArchiveReadersAgree(t *testing.T) {
	img, ref := testImage(t)
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	wantCfg, _ := img.ConfigName()
	file, raw := writeArchive(t, img, ref)

	// OCI layout: unpack the tar and open it as a directory.
	dir := t.TempDir()
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if hdr.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("not an OCI layout: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index lists %d manifests, want 1", len(im.Manifests))
	}
	d := im.Manifests[0]
	if d.Digest != want || d.MediaType != types.OCIManifestSchema1 {
		t.Errorf("index manifest = %s %s, want %s %s", d.Digest, d.MediaType, want, types.OCIManifestSchema1)
	}
	if got := d.Annotations[AnnotationImageName]; got != ref.String() {
		t.Errorf("%s = %q, want %q (ctr import names the image by it)", AnnotationImageName, got, ref.String())
	}
	if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != "amd64" {
		t.Errorf("index platform = %v, want linux/amd64", d.Platform)
	}
	li, err := idx.Image(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := validateLayers(li); err != nil {
		t.Errorf("OCI layout image: %v", err)
	}

	// docker save: manifest.json with RepoTags.
	dockerImg, err := tarball.ImageFromPath(file, &ref)
	if err != nil {
		t.Fatalf("not a docker save archive: %v", err)
	}
	if got, _ := dockerImg.ConfigName(); got != wantCfg {
		t.Errorf("docker view: config %s, want %s", got, wantCfg)
	}
	if err := validateLayers(dockerImg); err != nil {
		t.Errorf("docker view: %v", err)
	}

	got, err := Read(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Ref.String() != ref.String() {
		t.Fatalf("Read = %v, want one image %s", got, ref)
	}
	if gd, _ := got[0].Digest(); gd != want {
		t.Errorf("Read digest %s, want %s", gd, want)
	}
	if err := validateLayers(got[0]); err != nil {
		t.Errorf("Read: %v", err)
	}
}

// validateLayers checks each layer's compressed digest and its diff ID
// against the config.
func validateLayers(img v1.Image) error {
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	if len(layers) != len(cf.RootFS.DiffIDs) {
		return fmt.Errorf("%d layers, %d diff IDs", len(layers), len(cf.RootFS.DiffIDs))
	}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		h, _, err := v1.SHA256(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if h != cf.RootFS.DiffIDs[i] {
			return fmt.Errorf("layer %d: diff ID %s, config says %s", i, h, cf.RootFS.DiffIDs[i])
		}
	}
	return nil
}

func TestWriteIsDeterministic(t *testing.T) {
	img1, ref := testImage(t)
	img2, _ := testImage(t)
	_, a := writeArchive(t, img1, ref)
	_, b := writeArchive(t, img2, ref)
	if !bytes.Equal(a, b) {
		t.Fatal("two archives of the same inputs differ")
	}
}

func TestReadRejectsTamperedBlob(t *testing.T) {
	img, ref := testImage(t)
	_, raw := writeArchive(t, img, ref)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	// Rewrite the archive with one byte of the layer changed.
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if hdr.Name == "blobs/sha256/"+ld.Hex {
			data[len(data)-1] ^= 0xff
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	file := filepath.Join(t.TempDir(), "bad.tar")
	os.WriteFile(file, out.Bytes(), 0o644)
	imgs, err := Read(file)
	if err == nil {
		_, err = imgs[0].LayerByDigest(ld)
		if err == nil {
			var l v1.Layer
			l, err = imgs[0].LayerByDigest(ld)
			if err == nil {
				var rc io.ReadCloser
				rc, err = l.Compressed()
				if err == nil {
					rc.Close()
				}
			}
		}
	}
	if err == nil {
		t.Fatal("Read accepted an archive whose layer does not match its digest")
	}
}
