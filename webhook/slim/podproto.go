package slim

import (
	"encoding/binary"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The pods' informer receives every pod of the monitored namespaces each time the kubelet
// updates its status, in protobuf. The generated decoder builds the whole pod (every
// container's command, environment, probes, resources, the managed fields and the status)
// only for Pod to copy out a handful of fields: a sixth of the webhook's CPU. DecodePod
// walks the wire format instead and builds only what Pod keeps, nested values it keeps
// whole (owner references, container ports, its own conditions, timestamps) through their
// generated decoders. The field numbers are k8s.io/api/core/v1's and
// k8s.io/apimachinery's generated.proto.

// Wire types of the protobuf encoding.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

// field is one field of a message: its number and wire type, and its value (bytes for
// a length-delimited field, the number for a varint).
type field struct {
	num   uint64
	typ   uint64
	bytes []byte
	x     uint64
}

var errTruncated = errors.New("truncated")

// eachField calls visit with each field of the message m, in order. It checks every
// length against what is left of m and rejects groups (never used by Kubernetes).
func eachField(m []byte, visit func(f field) error) error {
	for i := 0; i < len(m); {
		key, n := binary.Uvarint(m[i:])
		if n <= 0 {
			return fmt.Errorf("field key at byte %d: bad varint", i)
		}
		i += n
		f := field{num: key >> 3, typ: key & 7}
		if f.num == 0 || f.num > 1<<29-1 {
			return fmt.Errorf("field key at byte %d: illegal field number %d", i-n, f.num)
		}
		switch f.typ {
		case wireVarint:
			if f.x, n = binary.Uvarint(m[i:]); n <= 0 {
				return fmt.Errorf("field %d: bad varint", f.num)
			}
			i += n
		case wireFixed64, wireFixed32:
			size := 8
			if f.typ == wireFixed32 {
				size = 4
			}
			if len(m)-i < size {
				return fmt.Errorf("field %d: %w", f.num, errTruncated)
			}
			i += size
		case wireBytes:
			length, n := binary.Uvarint(m[i:])
			if n <= 0 {
				return fmt.Errorf("field %d: bad length", f.num)
			}
			i += n
			if length > uint64(len(m)-i) {
				return fmt.Errorf("field %d: length %d past the end (%d bytes left): %w", f.num, length, len(m)-i, errTruncated)
			}
			f.bytes = m[i : i+int(length)]
			i += int(length)
		default:
			return fmt.Errorf("field %d: unsupported wire type %d", f.num, f.typ)
		}
		if err := visit(f); err != nil {
			return err
		}
	}
	return nil
}

// want checks that a field the decoder reads has the wire type its type has.
func (f field) want(typ uint64) error {
	if f.typ != typ {
		return fmt.Errorf("field %d: wire type %d, want %d", f.num, f.typ, typ)
	}
	return nil
}

// unmarshaler is a generated message type.
type unmarshaler interface{ Unmarshal([]byte) error }

// message decodes a field holding a message whole, with its generated decoder.
func (f field) message(into unmarshaler, what string) error {
	if err := f.want(wireBytes); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := into.Unmarshal(f.bytes); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// str reads a string field into s.
func (f field) str(s *string) error {
	if err := f.want(wireBytes); err != nil {
		return err
	}
	*s = string(f.bytes)
	return nil
}

// DecodePod decodes a Pod's protobuf message (what the API server wraps in its
// runtime.Unknown envelope) into the pod Pod returns for it, without building the rest.
// Malformed input is an error, never a panic.
//
// It builds Pod's fields straight (a wide pod copied by Pod was a fifth of its time, in
// allocations): Pod's field list is the one source, and TestDecodePodEqualsSlimOfFullDecode
// holds the two equal over random pods, so a field Pod starts keeping fails it until it is
// decoded here.
func DecodePod(m []byte) (*corev1.Pod, error) {
	p := new(corev1.Pod)
	if err := decodePod(m, p); err != nil {
		return nil, err
	}
	return p, nil
}

func decodePod(m []byte, p *corev1.Pod) error {
	return eachField(m, func(f field) error {
		var err error
		switch f.num {
		case 1:
			if err = f.want(wireBytes); err == nil {
				err = decodeMeta(f.bytes, p)
			}
			err = wrap("metadata", err)
		case 2:
			if err = f.want(wireBytes); err == nil {
				err = decodeSpec(f.bytes, &p.Spec)
			}
			err = wrap("spec", err)
		case 3:
			if err = f.want(wireBytes); err == nil {
				err = decodeStatus(f.bytes, &p.Status)
			}
			err = wrap("status", err)
		}
		return err
	})
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// decodeMeta reads what objectMeta keeps (the annotations readAnnotation names), labels
// and owner references.
func decodeMeta(m []byte, p *corev1.Pod) error {
	meta := &p.ObjectMeta
	return eachField(m, func(f field) error {
		switch f.num {
		case 1:
			return wrap("name", f.str(&meta.Name))
		case 3:
			return wrap("namespace", f.str(&meta.Namespace))
		case 5:
			var uid string
			err := f.str(&uid)
			meta.UID = types.UID(uid)
			return wrap("uid", err)
		case 6:
			return wrap("resourceVersion", f.str(&meta.ResourceVersion))
		case 7:
			if err := f.want(wireVarint); err != nil {
				return wrap("generation", err)
			}
			meta.Generation = int64(f.x)
		case 8:
			return f.message(&meta.CreationTimestamp, "creationTimestamp")
		case 9:
			if meta.DeletionTimestamp == nil {
				meta.DeletionTimestamp = new(metav1.Time)
			}
			return f.message(meta.DeletionTimestamp, "deletionTimestamp")
		case 11:
			k, v, err := mapEntry(f)
			if err != nil {
				return wrap("labels", err)
			}
			if meta.Labels == nil {
				meta.Labels = map[string]string{}
			}
			meta.Labels[string(k)] = string(v)
		case 12:
			k, v, err := mapEntry(f)
			if err != nil {
				return wrap("annotations", err)
			}
			// An annotation nobody reads is skipped before it costs a string.
			if readAnnotation(string(k)) {
				if meta.Annotations == nil {
					meta.Annotations = map[string]string{}
				}
				meta.Annotations[string(k)] = string(v)
			}
		case 13:
			meta.OwnerReferences = append(meta.OwnerReferences, metav1.OwnerReference{})
			return f.message(&meta.OwnerReferences[len(meta.OwnerReferences)-1], "ownerReferences")
		}
		return nil
	})
}

// mapEntry reads one entry of a map<string, string> field: a message of key (1) and value
// (2), either absent for an empty string, the last one counting.
func mapEntry(f field) (key, value []byte, err error) {
	if err := f.want(wireBytes); err != nil {
		return nil, nil, err
	}
	err = eachField(f.bytes, func(e field) error {
		switch e.num {
		case 1:
			key = e.bytes
			return wrap("key", e.want(wireBytes))
		case 2:
			value = e.bytes
			return wrap("value", e.want(wireBytes))
		}
		return nil
	})
	return key, value, err
}

// decodeSpec reads the containers' names and the app containers' ports, the OS node
// selector, hostNetwork and the OS.
func decodeSpec(m []byte, spec *corev1.PodSpec) error {
	return eachField(m, func(f field) error {
		switch f.num {
		case 2:
			spec.Containers = append(spec.Containers, corev1.Container{})
			return wrap("containers", decodeContainer(f, &spec.Containers[len(spec.Containers)-1], true))
		case 20:
			spec.InitContainers = append(spec.InitContainers, corev1.Container{})
			return wrap("initContainers", decodeContainer(f, &spec.InitContainers[len(spec.InitContainers)-1], false))
		case 7:
			k, v, err := mapEntry(f)
			if err != nil {
				return wrap("nodeSelector", err)
			}
			if string(k) == corev1.LabelOSStable {
				spec.NodeSelector = map[string]string{corev1.LabelOSStable: string(v)}
			}
		case 11:
			if err := f.want(wireVarint); err != nil {
				return wrap("hostNetwork", err)
			}
			spec.HostNetwork = f.x != 0
		case 36:
			if spec.OS == nil {
				spec.OS = new(corev1.PodOS)
			}
			return f.message(spec.OS, "os")
		}
		return nil
	})
}

// decodeContainer reads a container's name and, if ports, its ports (the app
// containers').
func decodeContainer(f field, c *corev1.Container, ports bool) error {
	if err := f.want(wireBytes); err != nil {
		return err
	}
	return eachField(f.bytes, func(f field) error {
		switch f.num {
		case 1:
			return wrap("name", f.str(&c.Name))
		case 6:
			if !ports {
				return nil
			}
			c.Ports = append(c.Ports, corev1.ContainerPort{})
			return f.message(&c.Ports[len(c.Ports)-1], "ports")
		}
		return nil
	})
}

// decodeStatus reads the phase and corsmesh's own conditions: the kubelet's are skipped
// by their type before they are decoded.
func decodeStatus(m []byte, status *corev1.PodStatus) error {
	return eachField(m, func(f field) error {
		switch f.num {
		case 1:
			var phase string
			err := f.str(&phase)
			status.Phase = corev1.PodPhase(phase)
			return wrap("phase", err)
		case 2:
			if err := f.want(wireBytes); err != nil {
				return wrap("conditions", err)
			}
			typ, err := conditionType(f.bytes)
			if err != nil {
				return wrap("conditions", err)
			}
			if !ownCondition(string(typ)) {
				return nil
			}
			status.Conditions = append(status.Conditions, corev1.PodCondition{})
			return f.message(&status.Conditions[len(status.Conditions)-1], "conditions")
		}
		return nil
	})
}

// conditionType is a PodCondition's type (field 1), the last one counting.
func conditionType(m []byte) ([]byte, error) {
	var typ []byte
	err := eachField(m, func(f field) error {
		if f.num == 1 {
			typ = f.bytes
			return wrap("type", f.want(wireBytes))
		}
		return nil
	})
	return typ, err
}
