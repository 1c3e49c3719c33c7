package sandbox

import (
	"context"
	"fmt"
	"time"
)

// CoreDNSImage is the cluster DNS image make sandbox-images builds (CoreDNS from its Go
// module); the node runs it when the registry serves it.
const CoreDNSImage = "registry.k8s.io/coredns/coredns:v1.15.0"

// coreDNSManifest is cluster DNS as kubeadm installs it, reduced to what a one-node
// sandbox needs: Service names and pod records of cluster.local, nothing forwarded (there
// is no DNS server outside).
const coreDNSManifest = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: coredns
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:coredns
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:coredns
subjects:
  - kind: ServiceAccount
    name: coredns
    namespace: kube-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: coredns
  namespace: kube-system
data:
  Corefile: |
    .:53 {
        errors
        ready
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        cache 5
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
spec:
  replicas: 1
  selector:
    matchLabels:
      k8s-app: kube-dns
  template:
    metadata:
      labels:
        k8s-app: kube-dns
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      containers:
        - name: coredns
          image: %[1]s
          args: ["-conf", "/etc/coredns/Corefile"]
          ports:
            - {name: dns, containerPort: 53, protocol: UDP}
            - {name: dns-tcp, containerPort: 53, protocol: TCP}
          readinessProbe:
            httpGet: {path: /ready, port: 8181}
            periodSeconds: 2
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
            readOnlyRootFilesystem: true
          volumeMounts:
            - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
        - name: config
          configMap: {name: coredns}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
spec:
  clusterIP: %[2]s
  selector:
    k8s-app: kube-dns
  ports:
    - {name: dns, port: 53, protocol: UDP}
    - {name: dns-tcp, port: 53, protocol: TCP}
`

// startCoreDNS installs cluster DNS at the kubelet's clusterDNS address and waits until
// it is ready.
func (s *Sandbox) startCoreDNS(ctx context.Context) error {
	s.logf("starting CoreDNS (kube-system/coredns, %s)", s.node.net.ServiceIP(10))
	manifest := fmt.Sprintf(coreDNSManifest, CoreDNSImage, s.node.net.ServiceIP(10))
	if _, err := s.KubectlWithInput(ctx, []byte(manifest), "apply", "-f", "-"); err != nil {
		return fmt.Errorf("installing CoreDNS: %w", err)
	}
	if _, err := s.Kubectl(ctx, "rollout", "status", "-n", "kube-system", "deployment/coredns", "--timeout="+(3*time.Minute).String()); err != nil {
		pods, _ := s.Kubectl(context.Background(), "get", "pods", "-n", "kube-system", "-o", "wide")
		events, _ := s.Kubectl(context.Background(), "get", "events", "-n", "kube-system")
		return fmt.Errorf("waiting for CoreDNS: %w\n%s\n%s%s", err, pods, events, s.logTail("kubelet"))
	}
	return nil
}
