package k8stest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	sigsyaml "sigs.k8s.io/yaml"
)

// object is one document of a rendered chart, decoded strictly.
type object struct {
	Source     string // the template it came from
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	Raw        []byte
	// Obj is the typed object for the kinds client-go knows; nil for the
	// two CRD kinds the chart may render, which are in Certificate and
	// ServiceMonitor instead.
	Obj            runtime.Object
	Certificate    *certificate
	ServiceMonitor *serviceMonitor
}

func (o object) String() string { return fmt.Sprintf("%s %s (%s)", o.Kind, o.Name, o.Source) }

// manifest is a rendered chart.
type manifest []object

// strictYAML decodes YAML into the API types of client-go's scheme and fails
// on unknown fields, duplicate fields and wrong types.
var strictYAML = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	json.SerializerOptions{Yaml: true, Strict: true})

var sourceLine = regexp.MustCompile(`(?m)^# Source: (\S+)`)

// decodeManifest splits helm's output into documents and decodes each one
// strictly; every failure is an error of t.
func decodeManifest(t testing.TB, text string) manifest {
	t.Helper()
	var m manifest
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(text)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("splitting the manifest: %v", err)
		}
		o, err := decodeObject(doc)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if o.Kind != "" {
			m = append(m, o)
		}
	}
	return m
}

func decodeObject(doc []byte) (object, error) {
	var o object
	if s := sourceLine.FindSubmatch(doc); s != nil {
		o.Source = string(s[1])
	}
	var meta struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
	}
	if err := sigsyaml.Unmarshal(doc, &meta); err != nil {
		return o, fmt.Errorf("%s: not YAML: %v", o.Source, err)
	}
	if meta.Kind == "" {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(string(doc), "")) != "" {
			return o, fmt.Errorf("%s: a document without a kind:\n%s", o.Source, doc)
		}
		return o, nil // comments only
	}
	o.APIVersion, o.Kind, o.Name, o.Namespace, o.Raw = meta.APIVersion, meta.Kind, meta.Metadata.Name, meta.Metadata.Namespace, doc
	var err error
	switch meta.APIVersion {
	case "cert-manager.io/v1":
		o.Certificate = new(certificate)
		err = sigsyaml.UnmarshalStrict(doc, o.Certificate)
		if err == nil {
			err = o.Certificate.validate()
		}
	case "monitoring.coreos.com/v1":
		o.ServiceMonitor = new(serviceMonitor)
		err = sigsyaml.UnmarshalStrict(doc, o.ServiceMonitor)
		if err == nil {
			err = o.ServiceMonitor.validate()
		}
	default:
		o.Obj, _, err = strictYAML.Decode(doc, nil, nil)
	}
	if err != nil {
		return o, fmt.Errorf("%s: %s %s does not decode strictly: %v", o.Source, o.Kind, o.Name, err)
	}
	return o, nil
}

// get returns the object of kind and name, or nil.
func (m manifest) get(kind, name string) *object {
	for i := range m {
		if m[i].Kind == kind && m[i].Name == name {
			return &m[i]
		}
	}
	return nil
}

// all returns the objects of kind.
func (m manifest) all(kind string) []object {
	var out []object
	for _, o := range m {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// podTemplate is a workload's pod template with the workload's name.
type podTemplate struct {
	Owner    object
	Template corev1.PodTemplateSpec
	Claims   []corev1.PersistentVolumeClaim
}

func (m manifest) podTemplates() []podTemplate {
	var out []podTemplate
	for _, o := range m {
		switch w := o.Obj.(type) {
		case *appsv1.StatefulSet:
			out = append(out, podTemplate{o, w.Spec.Template, w.Spec.VolumeClaimTemplates})
		case *appsv1.DaemonSet:
			out = append(out, podTemplate{o, w.Spec.Template, nil})
		case *appsv1.Deployment:
			out = append(out, podTemplate{o, w.Spec.Template, nil})
		}
	}
	return out
}

// edge returns the edge workload's pod template and its edge container.
func (m manifest) edge(t testing.TB) (podTemplate, *corev1.Container) {
	t.Helper()
	for _, p := range m.podTemplates() {
		if c := container(&p.Template.Spec, "edge"); c != nil {
			return p, c
		}
	}
	t.Fatalf("no edge container in the manifest")
	return podTemplate{}, nil
}

func container(spec *corev1.PodSpec, name string) *corev1.Container {
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == name {
			return &spec.InitContainers[i]
		}
	}
	return nil
}

// flags parses a container's "--name=value" arguments after the subcommand.
func flags(c *corev1.Container) map[string]string {
	f := map[string]string{}
	for _, a := range c.Args[1:] {
		name, value, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f[name] = value
	}
	return f
}

// certificate is the part of cert-manager's Certificate (cert-manager.io/v1)
// the chart may render; decoding into it strictly fails on any other field.
// Field names and values follow cert-manager's API reference.
type certificate struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		SecretName string `json:"secretName"`
		IssuerRef  struct {
			Name  string `json:"name"`
			Kind  string `json:"kind"`
			Group string `json:"group"`
		} `json:"issuerRef"`
		CommonName  string   `json:"commonName,omitempty"`
		DNSNames    []string `json:"dnsNames,omitempty"`
		Duration    string   `json:"duration,omitempty"`
		RenewBefore string   `json:"renewBefore,omitempty"`
		PrivateKey  *struct {
			Algorithm      string `json:"algorithm,omitempty"`
			Size           int    `json:"size,omitempty"`
			RotationPolicy string `json:"rotationPolicy,omitempty"`
			Encoding       string `json:"encoding,omitempty"`
		} `json:"privateKey,omitempty"`
		Usages []string `json:"usages,omitempty"`
	} `json:"spec"`
}

func (c *certificate) validate() error {
	s := c.Spec
	if c.Kind != "Certificate" || s.SecretName == "" || s.IssuerRef.Name == "" {
		return fmt.Errorf("kind %q, secretName %q, issuerRef.name %q: all are required", c.Kind, s.SecretName, s.IssuerRef.Name)
	}
	if s.IssuerRef.Kind != "Issuer" && s.IssuerRef.Kind != "ClusterIssuer" && s.IssuerRef.Group == "cert-manager.io" {
		return fmt.Errorf("issuerRef.kind %q: want Issuer or ClusterIssuer", s.IssuerRef.Kind)
	}
	if len(s.DNSNames) == 0 && s.CommonName == "" {
		return errors.New("neither dnsNames nor commonName")
	}
	d, err1 := time.ParseDuration(s.Duration)
	rb, err2 := time.ParseDuration(s.RenewBefore)
	if err := errors.Join(err1, err2); err != nil || rb >= d || d < time.Hour {
		return fmt.Errorf("duration %q, renewBefore %q: want durations, renewBefore < duration, duration ≥ 1h (%v)", s.Duration, s.RenewBefore, err)
	}
	if pk := s.PrivateKey; pk != nil {
		ok := map[string]bool{"RSA": true, "ECDSA": true, "Ed25519": true}[pk.Algorithm] &&
			map[string]bool{"": true, "Never": true, "Always": true}[pk.RotationPolicy]
		if !ok || (pk.Algorithm == "ECDSA" && pk.Size != 256 && pk.Size != 384 && pk.Size != 521) {
			return fmt.Errorf("privateKey %+v: not a valid algorithm, size and rotationPolicy", *pk)
		}
	}
	valid := map[string]bool{"signing": true, "digital signature": true, "content commitment": true, "key encipherment": true,
		"key agreement": true, "data encipherment": true, "cert sign": true, "crl sign": true, "encipher only": true,
		"decipher only": true, "any": true, "server auth": true, "client auth": true, "code signing": true,
		"email protection": true, "s/mime": true, "ipsec end system": true, "ipsec tunnel": true, "ipsec user": true,
		"timestamping": true, "ocsp signing": true, "microsoft sgc": true, "netscape sgc": true}
	for _, u := range s.Usages {
		if !valid[u] {
			return fmt.Errorf("usage %q is not one of cert-manager's", u)
		}
	}
	return nil
}

// serviceMonitor is the part of prometheus-operator's ServiceMonitor
// (monitoring.coreos.com/v1) the chart may render; decoding into it strictly
// fails on any other field. Field names follow the operator's API reference.
type serviceMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
			Authorization *struct {
				Type        string                   `json:"type"`
				Credentials corev1.SecretKeySelector `json:"credentials"`
			} `json:"authorization,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

func (s *serviceMonitor) validate() error {
	if s.Kind != "ServiceMonitor" || len(s.Spec.Endpoints) == 0 || len(s.Spec.Selector.MatchLabels) == 0 {
		return fmt.Errorf("kind %q with %d endpoints and selector %v: want a ServiceMonitor with both", s.Kind, len(s.Spec.Endpoints), s.Spec.Selector)
	}
	for _, e := range s.Spec.Endpoints {
		i, err1 := time.ParseDuration(e.Interval)
		st, err2 := time.ParseDuration(e.ScrapeTimeout)
		if err := errors.Join(err1, err2); err != nil || st > i {
			return fmt.Errorf("interval %q, scrapeTimeout %q: want durations with scrapeTimeout ≤ interval (%v)", e.Interval, e.ScrapeTimeout, err)
		}
		if e.Scheme != "http" && e.Scheme != "https" {
			return fmt.Errorf("scheme %q", e.Scheme)
		}
	}
	return nil
}

// selects reports whether selector (a map of labels) selects the labels l.
func selects(selector map[string]string, l map[string]string) bool {
	return len(selector) > 0 && labels.SelectorFromSet(selector).Matches(labels.Set(l))
}
