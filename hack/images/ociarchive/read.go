package ociarchive

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image is one image read from an archive's OCI index.
type Image struct {
	// Ref is the name the index annotates it with (io.containerd.image.name).
	Ref name.Tag
	v1.Image
}

// Read returns the images of the archive at path, as its index.json lists
// them, with their manifests byte for byte: pushing one to a registry keeps
// the digest `make images` recorded. Blobs are verified against their
// digests.
func Read(file string) ([]Image, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", file, hdr.Name, err)
		}
		files[path.Clean(hdr.Name)] = data
	}
	if _, ok := files["oci-layout"]; !ok {
		return nil, fmt.Errorf("%s: no oci-layout: not an OCI image layout archive", file)
	}
	var index v1.IndexManifest
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		return nil, fmt.Errorf("%s: index.json: %w", file, err)
	}
	blob := func(h v1.Hash) ([]byte, error) {
		data, ok := files[blobPath(h)]
		if !ok {
			return nil, fmt.Errorf("%s: blob %s missing", file, h)
		}
		got, _, err := v1.SHA256(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		if got != h {
			return nil, fmt.Errorf("%s: blob %s has digest %s", file, h, got)
		}
		return data, nil
	}
	var out []Image
	for _, d := range index.Manifests {
		refName := d.Annotations[AnnotationImageName]
		ref, err := name.NewTag(refName, name.StrictValidation)
		if err != nil {
			return nil, fmt.Errorf("%s: manifest %s: image name %q: %w", file, d.Digest, refName, err)
		}
		raw, err := blob(d.Digest)
		if err != nil {
			return nil, err
		}
		img, err := partial.CompressedToImage(&archiveImage{raw: raw, mt: d.MediaType, blob: blob})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		out = append(out, Image{Ref: ref, Image: img})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: index.json lists no image", file)
	}
	return out, nil
}

// archiveImage is the minimal core partial.CompressedToImage completes.
type archiveImage struct {
	raw  []byte
	mt   types.MediaType
	blob func(v1.Hash) ([]byte, error)
}

func (a *archiveImage) RawManifest() ([]byte, error)        { return a.raw, nil }
func (a *archiveImage) MediaType() (types.MediaType, error) { return a.mt, nil }

func (a *archiveImage) RawConfigFile() ([]byte, error) {
	m, err := v1.ParseManifest(bytes.NewReader(a.raw))
	if err != nil {
		return nil, err
	}
	return a.blob(m.Config.Digest)
}

func (a *archiveImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := v1.ParseManifest(bytes.NewReader(a.raw))
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if l.Digest == h {
			data, err := a.blob(h)
			if err != nil {
				return nil, err
			}
			return &archiveLayer{desc: l, data: data}, nil
		}
	}
	return nil, fmt.Errorf("layer %s not in the manifest", h)
}

type archiveLayer struct {
	desc v1.Descriptor
	data []byte
}

func (l *archiveLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *archiveLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *archiveLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *archiveLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.data)), nil
}
