package juhesim_test

import (
	"fmt"
	"io"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
)

func Example() {
	sim, err := juhesim.New(juhesim.Config{
		Keys:   []string{"my-key"},
		OpenID: "my-openid",
		// A fixed clock makes the order id predictable.
		Now: func() time.Time { return time.Date(2019, 11, 8, 7, 25, 22, 0, time.UTC) },
	})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()

	// An md5+aes query, as the client sends it.
	mobile, _ := juhe.EncodeMobile(juhe.ModeMD5AES, "17312345678", juhe.AESKey("my-openid"))
	sim.Register("17312345678") // so that the simulator can map the digest back
	v := url.Values{"key": {"my-key"}, "mobile": {mobile}, "date": {"20160101"}}
	resp, err := srv.Client().Get(srv.URL + juhe.PathQueryEncry + "?" + v.Encode())
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	fmt.Println(juhesim.Expect("17312345678", "20160101"))
	// Output:
	// {"reason":"成功","result":{"res":1,"orderid":"JH327201911081525220001"},"error_code":0}
	// 0 1
}

func ExampleSim_SetFaults() {
	sim, _ := juhesim.New(juhesim.Config{Keys: []string{"my-key"}, Population: -1})
	srv := httptest.NewServer(sim)
	defer srv.Close()

	// Answer two requests normally, then 10012 for ever.
	_ = sim.SetFaults(juhesim.Faults{AfterRequests: 2, ErrorRates: map[int]float64{10012: 1}})
	for range 4 {
		resp, err := srv.Client().Get(srv.URL + juhe.PathQuery + "?key=my-key&mobile=13812345610&date=20180519")
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
	}
	fmt.Println(sim.Stats().ByCode)
	// Output: map[0:2 10012:2]
}
