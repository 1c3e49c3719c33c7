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

// mapOps are the JSON patch operations setting added's entries in the string map at path
// (labels), which the object has as existing: the whole map when it has none (absent,
// null or empty alike), else one "add" per key ("add" replaces an existing value).
func mapOps(path string, existing, added map[string]string) []jsonpatch.Operation {
	if len(added) == 0 {
		return nil
	}
	if len(existing) == 0 {
		return []jsonpatch.Operation{jsonpatch.NewOperation("add", path, added)}
	}
	ops := make([]jsonpatch.Operation, 0, len(added))
	for _, k := range slices.Sorted(maps.Keys(added)) {
		ops = append(ops, jsonpatch.NewOperation("add", path+"/"+escapeJSONPointer(k), added[k]))
	}
	return ops
}
