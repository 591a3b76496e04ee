package juhe_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
)

// Example queries the simulator with the mobile sent as sha256+aes. The
// answer for (mobile, date) is the simulator's rule, juhesim.Expect.
func Example() {
	sim, err := juhesim.New(juhesim.Config{Keys: []string{"demo-key"}, OpenID: "demo-openid"})
	if err != nil {
		panic(err)
	}
	sim.Register("17312345678") // a digest mode needs the simulator to know the number
	srv := httptest.NewServer(sim)
	defer srv.Close()

	client, err := juhe.New(juhe.Config{
		BaseURL: srv.URL, // default https://apis.juhe.cn
		Key:     "demo-key",
		OpenID:  "demo-openid",
		Mode:    juhe.ModeSHA256AES,
	})
	if err != nil {
		panic(err)
	}
	for _, date := range []string{"20160101", "20240102"} {
		ans, err := client.Query(context.Background(), "17312345678", date)
		if err != nil {
			panic(err)
		}
		fmt.Println(date, ans.Status(), ans.Res, ans.Mode, ans.Attempts)
	}
	// Output:
	// 20160101 recycled 1 sha256+aes 1
	// 20240102 not_recycled 2 sha256+aes 1
}

// Example_errors shows how a caller turns a failed query into an action.
func Example_errors() {
	sim, _ := juhesim.New(juhesim.Config{Keys: []string{"demo-key"}})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	client, _ := juhe.New(juhe.Config{BaseURL: srv.URL, Key: "a-revoked-key"})

	_, err := client.Query(context.Background(), "17312345678", "20240102")
	switch {
	case err == nil:
		fmt.Println("enrich the record")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		fmt.Println("our own shutdown: leave the record for the next owner")
	case juhe.IsRecord(err):
		fmt.Println("dead-letter the record:", err)
	case juhe.IsFatal(err):
		fmt.Println("stop consuming:", err)
	case juhe.IsQuota(err), juhe.IsUnavailable(err), juhe.IsTransient(err):
		fmt.Println("pause and try again later:", err)
	}
	// Output:
	// stop consuming: juhe: the provider rejected the API key (10001 错误的请求KEY): check juhe.key
}
