// CloudFront invalidations: CreateInvalidation, GetInvalidation,
// ListInvalidations, and when each PoP purges.

package localaws

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

type invalidation struct {
	ID              string    `json:"id"`
	CallerReference string    `json:"caller_reference"`
	Paths           []string  `json:"paths"`
	Created         time.Time `json:"created"`
	Completes       time.Time `json:"completes"`
	// PopDone is when each PoP purges its cache, all by Completes.
	PopDone []time.Time `json:"pop_done,omitempty"`
}

// purgeAt is when PoP pop purges the invalidation's paths.
func (inv *invalidation) purgeAt(pop int) time.Time {
	if pop < len(inv.PopDone) {
		return inv.PopDone[pop]
	}
	return inv.Completes
}

// covers reports whether the invalidation names viewer path p: "/*"
// everything, "/a/*" a prefix, otherwise the path itself.
func (inv *invalidation) covers(p string) bool {
	for _, pat := range inv.Paths {
		if prefix, ok := strings.CutSuffix(pat, "*"); ok && strings.HasPrefix(p, prefix) || pat == p {
			return true
		}
	}
	return false
}

// countPaths splits invalidation paths into wildcard ones ("/img/*") and
// file ones.
func countPaths(paths []string) (wild, files int) {
	for _, p := range paths {
		if strings.HasSuffix(p, "*") {
			wild++
		} else {
			files++
		}
	}
	return wild, files
}

func (s *cfService) createInvalidation(w http.ResponseWriter, r *http.Request, id string) {
	var batch struct {
		Paths struct {
			Quantity int
			Items    []string `xml:"Items>Path"`
		}
		CallerReference string
	}
	if err := xml.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&batch); err != nil {
		writeCFError(w, cfError{Status: 400, Code: "MalformedXML", Message: err.Error()})
		return
	}
	if batch.CallerReference == "" || batch.Paths.Quantity != len(batch.Paths.Items) || len(batch.Paths.Items) == 0 {
		writeCFError(w, cfError{Status: 400, Code: "InvalidArgument", Message: "an invalidation needs a CallerReference and at least one path, with Quantity matching"})
		return
	}
	for _, p := range batch.Paths.Items {
		if !strings.HasPrefix(p, "/") {
			writeCFError(w, cfError{Status: 400, Code: "InvalidArgument", Message: "Your request contains one or more invalid invalidation paths: " + p})
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dist(w, id)
	if d == nil {
		return
	}
	// CloudFront answers a repeated caller reference with the invalidation
	// it already made when the batch is the same, and refuses it otherwise.
	for _, inv := range d.Invalidations {
		if inv.CallerReference == batch.CallerReference {
			if strings.Join(inv.Paths, "\n") != strings.Join(batch.Paths.Items, "\n") {
				writeCFError(w, cfError{Status: 409, Code: "InvalidationBatchAlreadyExists", Message: "A different invalidation batch with this caller reference exists."})
				return
			}
			w.Header().Set("Location", "/2020-05-31/distribution/"+d.ID+"/invalidation/"+inv.ID)
			s.writeInvalidation(w, http.StatusCreated, inv)
			return
		}
	}
	now := s.now().UTC()
	// At most 15 wildcard paths and 3,000 file paths in progress per
	// distribution
	// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html#limits-invalidations).
	wild, files := countPaths(batch.Paths.Items)
	for _, inv := range d.Invalidations {
		if now.Before(inv.Completes) {
			w, f := countPaths(inv.Paths)
			wild, files = wild+w, files+f
		}
	}
	if wild > 15 || files > 3000 {
		writeCFError(w, cfError{Status: 400, Code: "TooManyInvalidationsInProgress",
			Message: "Processing your request will cause you to exceed the maximum number of in-progress wildcard invalidations."})
		return
	}
	inv := &invalidation{ID: newID('I'), CallerReference: batch.CallerReference, Paths: batch.Paths.Items,
		Created: now, Completes: now.Add(s.invalidation)}
	for range s.pops {
		inv.PopDone = append(inv.PopDone, now.Add(s.within(s.invalidation)))
	}
	d.Invalidations = append(d.Invalidations, inv)
	if err := s.save(); err != nil {
		writeCFError(w, cfError{Status: 500, Code: "InternalError", Message: err.Error()})
		return
	}
	w.Header().Set("Location", "/2020-05-31/distribution/"+d.ID+"/invalidation/"+inv.ID)
	s.writeInvalidation(w, http.StatusCreated, inv)
}

func (s *cfService) invStatus(inv *invalidation) string {
	if s.now().Before(inv.Completes) {
		return "InProgress"
	}
	return "Completed"
}

func (s *cfService) writeInvalidation(w http.ResponseWriter, status int, inv *invalidation) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	fmt.Fprintf(&b, `<Invalidation xmlns="%s"><Id>%s</Id><Status>%s</Status><CreateTime>%s</CreateTime><InvalidationBatch><Paths><Quantity>%d</Quantity><Items>`,
		cfNS, inv.ID, s.invStatus(inv), inv.Created.Format(awsTime), len(inv.Paths))
	for _, p := range inv.Paths {
		fmt.Fprintf(&b, "<Path>%s</Path>", xmlEscape(p))
	}
	fmt.Fprintf(&b, `</Items></Paths><CallerReference>%s</CallerReference></InvalidationBatch></Invalidation>`, xmlEscape(inv.CallerReference))
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func (s *cfService) getInvalidation(w http.ResponseWriter, id, invID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dist(w, id)
	if d == nil {
		return
	}
	for _, inv := range d.Invalidations {
		if inv.ID == invID {
			s.writeInvalidation(w, http.StatusOK, inv)
			return
		}
	}
	writeCFError(w, cfError{Status: 404, Code: "NoSuchInvalidation", Message: "The specified invalidation does not exist."})
}

func (s *cfService) listInvalidations(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dist(w, id)
	if d == nil {
		return
	}
	n := len(d.Invalidations)
	writeCFList(w, "InvalidationList", n, func(b *bytes.Buffer, i int) {
		// Newest first, as CloudFront lists them.
		inv := d.Invalidations[n-1-i]
		fmt.Fprintf(b, `<InvalidationSummary><Id>%s</Id><CreateTime>%s</CreateTime><Status>%s</Status></InvalidationSummary>`,
			inv.ID, inv.Created.Format(awsTime), s.invStatus(inv))
	})
}
