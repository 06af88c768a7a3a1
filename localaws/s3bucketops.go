// Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
// GetBucketLocation.

package localaws

import (
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"sort"
)

func (s *s3Service) listBuckets(w http.ResponseWriter, _ *http.Request) {
	type bucketXML struct {
		Name         string
		CreationDate string
	}
	type result struct {
		XMLName xml.Name    `xml:"ListAllMyBucketsResult"`
		NS      string      `xml:"xmlns,attr"`
		Buckets []bucketXML `xml:"Buckets>Bucket"`
	}
	s.mu.RLock()
	res := result{NS: s3NS}
	for _, b := range s.buckets {
		res.Buckets = append(res.Buckets, bucketXML{Name: b.name, CreationDate: b.created.UTC().Format(awsTime)})
	}
	s.mu.RUnlock()
	sort.Slice(res.Buckets, func(i, j int) bool { return res.Buckets[i].Name < res.Buckets[j].Name })
	writeXML(w, http.StatusOK, res)
}

func validBucketName(name string) bool {
	if len(name) < 3 || len(name) > 63 {
		return false
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (c == '-' || c == '.') && i > 0 && i < len(name)-1
		if !ok {
			return false
		}
	}
	return true
}

func (s *s3Service) createBucket(w http.ResponseWriter, r *http.Request, name string) {
	body, _ := io.ReadAll(io.LimitReader(readBody(r), 1<<20))
	if !validBucketName(name) {
		writeS3Error(w, r, s3Error{Status: http.StatusBadRequest, Code: "InvalidBucketName", Message: "The specified bucket is not valid."})
		return
	}
	region, e := createBucketRegion(r, body)
	if e != nil {
		writeS3Error(w, r, *e)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.buckets[name]; ok {
		writeS3Error(w, r, s3Error{Status: http.StatusConflict, Code: "BucketAlreadyOwnedByYou", Message: "Your previous request to create the named bucket succeeded and you already own it."})
		return
	}
	if _, err := s.newBucket(name, region); err != nil {
		writeS3Error(w, r, s3Error{Status: 500, Code: "InternalError", Message: err.Error()})
		return
	}
	w.Header().Set("Location", "/"+name)
	w.WriteHeader(http.StatusOK)
}

// getBucketLocation answers the bucket's location constraint: empty for
// us-east-1
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketLocation.html).
func (s *s3Service) getBucketLocation(w http.ResponseWriter, r *http.Request, name string) {
	b := s.bucket(w, r, name)
	if b == nil {
		return
	}
	type loc struct {
		XMLName xml.Name `xml:"LocationConstraint"`
		NS      string   `xml:"xmlns,attr"`
		Region  string   `xml:",chardata"`
	}
	s.mu.RLock()
	region := b.cfg.Region
	s.mu.RUnlock()
	if region == DefaultRegion {
		region = ""
	}
	writeXML(w, http.StatusOK, loc{NS: s3NS, Region: region})
}

// headBucket answers 200 with the bucket's region in
// x-amz-bucket-region (a request from another region was answered 301
// with it by wrongRegion), as
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html
// documents.
func (s *s3Service) headBucket(w http.ResponseWriter, r *http.Request, name string) {
	if b := s.bucket(w, r, name); b != nil {
		s.mu.RLock()
		region := b.cfg.Region
		s.mu.RUnlock()
		w.Header().Set("x-amz-bucket-region", region)
		w.WriteHeader(http.StatusOK)
	}
}

func (s *s3Service) deleteBucket(w http.ResponseWriter, r *http.Request, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[name]
	if b == nil {
		writeS3Error(w, r, s3Error{Status: http.StatusNotFound, Code: "NoSuchBucket", Message: "The specified bucket does not exist"})
		return
	}
	if len(b.objects) > 0 {
		writeS3Error(w, r, s3Error{Status: http.StatusConflict, Code: "BucketNotEmpty", Message: "The bucket you tried to delete is not empty"})
		return
	}
	os.RemoveAll(b.dir)
	delete(s.buckets, name)
	w.WriteHeader(http.StatusNoContent)
}
