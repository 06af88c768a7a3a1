package localaws

import (
	"bytes"
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// The KeyValueStore control plane is part of the CloudFront API
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateKeyValueStore.html,
// API_DescribeKeyValueStore.html, API_ListKeyValueStores.html,
// API_UpdateKeyValueStore.html, API_DeleteKeyValueStore.html). Stores it
// makes are the data plane's (kvs.go) and functions' (functions.go).

var kvsNameRE = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,64}$`)

// newUUID is a random (version 4) UUID, the form of a store's id.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// id is the store's id, the last part of its ARN.
func (s *kvStore) id() string { return s.ARN[strings.LastIndex(s.ARN, "/")+1:] }

// ctlETag is the store's version in the control plane (UpdateKeyValueStore
// and DeleteKeyValueStore take it), not the data plane's ETag.
func (s *kvStore) ctlETag() string {
	if s.CtlETag == "" {
		s.CtlETag = "E" + strings.ToUpper(strings.ReplaceAll(s.id(), "-", ""))[:13]
	}
	return s.CtlETag
}

// newStore adds a store called name; callers hold mu.
func (k *kvStores) newStore(name, comment string) *kvStore {
	now := k.now().UTC()
	s := &kvStore{ARN: "arn:aws:cloudfront::" + StandInAccount + ":key-value-store/" + newUUID(), Name: name, Comment: comment,
		ETag: newID('K'), CtlETag: newID('E'), Items: map[string]string{}, Created: now, Modified: now}
	k.byARN[s.ARN] = s
	return s
}

// exists reports whether arn names a store.
func (k *kvStores) exists(arn string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.byARN[arn] != nil
}

func writeKVSControl(w http.ResponseWriter, status int, s *kvStore) {
	type store struct {
		XMLName          xml.Name `xml:"KeyValueStore"`
		NS               string   `xml:"xmlns,attr"`
		Name             string
		ID               string `xml:"Id"`
		Comment          string
		ARN              string
		Status           string
		LastModifiedTime string
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	_ = xml.NewEncoder(&b).Encode(store{NS: cfNS, Name: s.Name, ID: s.id(), Comment: s.Comment, ARN: s.ARN, Status: "READY",
		LastModifiedTime: s.Modified.UTC().Format(awsTime)})
	w.Header().Set("ETag", s.ctlETag())
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", newRequestID())
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// serveKVSControl answers the control plane. Names are unique in the
// account (EntityAlreadyExists), of 1 to 64 letters, digits, - and _;
// comments up to 50 characters; a store is READY once created (the
// stand-in does not model PROVISIONING); UpdateKeyValueStore and
// DeleteKeyValueStore take its ETag in If-Match; a store a function is
// associated with cannot be deleted (CannotDeleteEntityWhileInUse).
// ImportSource (a store filled from S3) is not modelled and is answered
// NotImplemented.
func (srv *Server) serveKVSControl(w http.ResponseWriter, r *http.Request, op string) {
	k := srv.kvs
	c := kvsCall{k: k, w: w, r: r}
	name := kvsCtlPath.FindStringSubmatch(r.URL.Path)[1]
	if op == "CreateKeyValueStore" || op == "UpdateKeyValueStore" {
		if !decodeXML(w, r, &c.req) {
			return
		}
		if len([]rune(c.req.Comment)) > 50 {
			writeCFError(w, cfError{Status: 400, Code: "InvalidArgument", Message: "The comment can be at most 50 characters."})
			return
		}
	}
	var inUse bool
	if op == "DeleteKeyValueStore" {
		// Asked before taking k.mu: the functions take their own lock.
		k.mu.Lock()
		s := k.named(name)
		k.mu.Unlock()
		inUse = s != nil && srv.fns.usesStore(s.ARN)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if name != "" {
		if c.s = k.named(name); c.s == nil {
			writeCFError(w, cfError{Status: 404, Code: "EntityNotFound", Message: "The key value store " + name + " was not found."})
			return
		}
	}
	switch op {
	case "CreateKeyValueStore":
		c.create()
	case "DescribeKeyValueStore":
		writeKVSControl(w, http.StatusOK, c.s)
	case "UpdateKeyValueStore":
		c.update()
	case "DeleteKeyValueStore":
		c.delete(inUse)
	case "ListKeyValueStores":
		k.writeList(w)
	default:
		writeCFError(w, cfError{Status: http.StatusNotImplemented, Code: "NotImplemented", Message: "localaws does not implement " + r.Method + " " + r.URL.Path})
	}
}

// named returns the store called name, or nil; callers hold mu.
func (k *kvStores) named(name string) *kvStore {
	var s *kvStore
	for _, st := range k.byARN {
		if st.Name == name && name != "" {
			s = st
		}
	}
	return s
}

// kvsCall is one control plane request, served under the stores' mu: the
// request body (create, update) and the store its path names.
type kvsCall struct {
	k   *kvStores
	w   http.ResponseWriter
	r   *http.Request
	req struct {
		Name         string
		Comment      string
		ImportSource *struct{}
	}
	s *kvStore
}

func (c *kvsCall) save() bool {
	if err := c.k.save(); err != nil {
		writeCFError(c.w, cfError{Status: 500, Code: "InternalError", Message: err.Error()})
		return false
	}
	return true
}

func (c *kvsCall) create() {
	switch {
	case !kvsNameRE.MatchString(c.req.Name):
		writeCFError(c.w, cfError{Status: 400, Code: "InvalidArgument", Message: "The key value store name must be 1 to 64 letters, digits, - or _."})
		return
	case c.req.ImportSource != nil:
		writeCFError(c.w, cfError{Status: http.StatusNotImplemented, Code: "NotImplemented", Message: "localaws does not import key value stores from S3"})
		return
	}
	for _, st := range c.k.byARN {
		if st.Name == c.req.Name {
			writeCFError(c.w, cfError{Status: 409, Code: "EntityAlreadyExists", Message: "The key value store " + c.req.Name + " already exists."})
			return
		}
	}
	s := c.k.newStore(c.req.Name, c.req.Comment)
	if !c.save() {
		delete(c.k.byARN, s.ARN)
		return
	}
	c.w.Header().Set("Location", "/2020-05-31/key-value-store/"+s.Name)
	writeKVSControl(c.w, http.StatusCreated, s)
}

func (c *kvsCall) update() {
	if !ifMatches(c.w, c.r, c.s.ctlETag()) {
		return
	}
	c.s.Comment, c.s.CtlETag, c.s.Modified = c.req.Comment, newID('E'), c.k.now().UTC()
	if c.save() {
		writeKVSControl(c.w, http.StatusOK, c.s)
	}
}

func (c *kvsCall) delete(inUse bool) {
	if !ifMatches(c.w, c.r, c.s.ctlETag()) {
		return
	}
	if inUse {
		writeCFError(c.w, cfError{Status: 409, Code: "CannotDeleteEntityWhileInUse", Message: "The key value store is associated with a function and cannot be deleted."})
		return
	}
	delete(c.k.byARN, c.s.ARN)
	if c.save() {
		c.w.WriteHeader(http.StatusNoContent)
	}
}

// writeList answers ListKeyValueStores; callers hold mu.
func (k *kvStores) writeList(w http.ResponseWriter) {
	stores := make([]*kvStore, 0, len(k.byARN))
	for _, st := range k.byARN {
		stores = append(stores, st)
	}
	sort.Slice(stores, func(i, j int) bool { return stores[i].Name < stores[j].Name })
	var b bytes.Buffer
	b.WriteString(xml.Header)
	fmt.Fprintf(&b, `<KeyValueStoreList xmlns="%s"><MaxItems>100</MaxItems><Quantity>%d</Quantity>`, cfNS, len(stores))
	if len(stores) > 0 {
		b.WriteString("<Items>")
		for _, st := range stores {
			fmt.Fprintf(&b, `<KeyValueStore><Name>%s</Name><Id>%s</Id><Comment>%s</Comment><ARN>%s</ARN><Status>READY</Status><LastModifiedTime>%s</LastModifiedTime></KeyValueStore>`,
				xmlEscape(st.Name), st.id(), xmlEscape(st.Comment), st.ARN, st.Modified.UTC().Format(awsTime))
		}
		b.WriteString("</Items>")
	}
	b.WriteString("</KeyValueStoreList>")
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}
