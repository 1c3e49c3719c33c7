package slim

import (
	"bytes"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// LeanPods wraps a client's serializers so that its protobuf decoder decodes Pods and
// PodLists of core v1 with DecodePod: straight into the pods Pod keeps, as list responses
// and as the objects of watch events (which a REST client decodes with the same decoder).
// Anything else (another kind, a Status error, JSON, an envelope it does not expect) goes
// to the wrapped decoder unchanged. Meant for the pods' informer, which keeps only what Pod
// keeps anyway: a client that reads whole pods must not use it.
func LeanPods(ns runtime.NegotiatedSerializer) runtime.NegotiatedSerializer {
	return leanPods{ns}
}

type leanPods struct{ runtime.NegotiatedSerializer }

func (l leanPods) SupportedMediaTypes() []runtime.SerializerInfo {
	infos := slices.Clone(l.NegotiatedSerializer.SupportedMediaTypes())
	for i := range infos {
		if infos[i].MediaType == runtime.ContentTypeProtobuf && infos[i].Serializer != nil {
			infos[i].Serializer = podDecoder{infos[i].Serializer}
		}
	}
	return infos
}

// podDecoder is a protobuf serializer decoding Pods and PodLists lean.
type podDecoder struct{ runtime.Serializer }

// protobufMagic starts every protobuf object the API server sends, before its
// runtime.Unknown envelope.
var protobufMagic = []byte("k8s\x00")

var (
	podKind     = corev1.SchemeGroupVersion.WithKind("Pod")
	podListKind = corev1.SchemeGroupVersion.WithKind("PodList")
)

func (d podDecoder) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	if !bytes.HasPrefix(data, protobufMagic) {
		return d.Serializer.Decode(data, defaults, into)
	}
	env, err := decodeEnvelope(data[len(protobufMagic):])
	if err != nil || env.contentEncoding != "" || env.contentType != "" || env.apiVersion != podKind.GroupVersion().String() {
		// The wrapped decoder reports what is wrong, or decodes what it knows better.
		return d.Serializer.Decode(data, defaults, into)
	}
	switch env.kind {
	case podKind.Kind:
		out, ok := into.(*corev1.Pod)
		if into != nil && (!ok || out == nil) {
			break
		}
		gvk := podKind
		pod, err := DecodePod(env.raw)
		if err != nil {
			return nil, &gvk, fmt.Errorf("decoding a Pod: %w", err)
		}
		if out != nil {
			*out = *pod
			pod = out
		}
		// As the protobuf serializer does; a client's decoder clears it again.
		pod.SetGroupVersionKind(gvk)
		return pod, &gvk, nil
	case podListKind.Kind:
		out, ok := into.(*corev1.PodList)
		if into != nil && (!ok || out == nil) {
			break
		}
		gvk := podListKind
		if out == nil {
			out = &corev1.PodList{}
		}
		*out = corev1.PodList{}
		if err := decodePodList(env.raw, out); err != nil {
			return nil, &gvk, fmt.Errorf("decoding a PodList: %w", err)
		}
		out.SetGroupVersionKind(gvk)
		return out, &gvk, nil
	}
	return d.Serializer.Decode(data, defaults, into)
}

// decodePodList reads a PodList's metadata (1) whole and its items (2) with DecodePod.
func decodePodList(m []byte, list *corev1.PodList) error {
	return eachField(m, func(f field) error {
		switch f.num {
		case 1:
			return f.message(&list.ListMeta, "metadata")
		case 2:
			if err := f.want(wireBytes); err != nil {
				return wrap("items", err)
			}
			pod, err := DecodePod(f.bytes)
			if err != nil {
				return fmt.Errorf("items[%d]: %w", len(list.Items), err)
			}
			list.Items = append(list.Items, *pod)
		}
		return nil
	})
}

// envelope is the runtime.Unknown the API server wraps a protobuf object in.
type envelope struct {
	apiVersion, kind             string
	raw                          []byte
	contentEncoding, contentType string
}

// decodeEnvelope reads the envelope without copying raw, which the generated decoder of
// runtime.Unknown would.
func decodeEnvelope(m []byte) (envelope, error) {
	var env envelope
	err := eachField(m, func(f field) error {
		switch f.num {
		case 1:
			if err := f.want(wireBytes); err != nil {
				return wrap("typeMeta", err)
			}
			return wrap("typeMeta", eachField(f.bytes, func(f field) error {
				switch f.num {
				case 1:
					return wrap("apiVersion", f.str(&env.apiVersion))
				case 2:
					return wrap("kind", f.str(&env.kind))
				}
				return nil
			}))
		case 2:
			env.raw = f.bytes
			return wrap("raw", f.want(wireBytes))
		case 3:
			return wrap("contentEncoding", f.str(&env.contentEncoding))
		case 4:
			return wrap("contentType", f.str(&env.contentType))
		}
		return nil
	})
	return env, err
}
