package juhe

import (
	"crypto/tls"
	"net/http"
	"reflect"
	"testing"
)

// The provider's connection honours the standard proxy variables
// (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) and never negotiates below TLS 1.2.
// net/http reads the variables once per process, so the test checks the
// wiring rather than setting them.
func TestPooledTransportProxyAndTLS(t *testing.T) {
	tr := pooledTransport(8, nil)
	if tr.Proxy == nil || reflect.ValueOf(tr.Proxy).Pointer() != reflect.ValueOf(http.ProxyFromEnvironment).Pointer() {
		t.Error("the transport does not take its proxy from the environment")
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.MinVersion < tls.VersionTLS12 {
		t.Errorf("TLS config %+v: want TLS 1.2 or later", tr.TLSClientConfig)
	}
	if tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("certificate verification is off")
	}
	if !tr.ForceAttemptHTTP2 || tr.MaxIdleConnsPerHost != 8 {
		t.Errorf("HTTP/2 %v, idle per host %d", tr.ForceAttemptHTTP2, tr.MaxIdleConnsPerHost)
	}
}
