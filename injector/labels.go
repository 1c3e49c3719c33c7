package injector

import (
	"maps"
	"slices"

	"gomodules.xyz/jsonpatch/v2"
)

// setAll sets added's entries in m, allocating m when it is nil and something is added.
func setAll(m, added map[string]string) map[string]string {
	if len(added) == 0 {
		return m
	}
	if m == nil {
		m = make(map[string]string, len(added))
	}
	maps.Copy(m, added)
	return m
}

// appendMapOps appends the JSON patch operations setting added's entries in the string
// map at path (annotations, labels), which the object has as existing: the whole map when
// it has none (absent, null or empty alike), else one "add" per key in key order ("add"
// replaces an existing value).
func appendMapOps(ops []jsonpatch.Operation, path string, existing, added map[string]string) []jsonpatch.Operation {
	if len(added) == 0 {
		return ops
	}
	if len(existing) == 0 {
		return append(ops, jsonpatch.NewOperation("add", path, added))
	}
	keys := slices.AppendSeq(make([]string, 0, 8), maps.Keys(added)) // on the stack for a few
	slices.Sort(keys)
	for _, k := range keys {
		ops = append(ops, jsonpatch.NewOperation("add", path+"/"+escapeJSONPointer(k), added[k]))
	}
	return ops
}
