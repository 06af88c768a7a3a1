package localaws

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// The checksums of a multipart upload's parts, as S3 checks them
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html):
//
//   - CreateMultipartUpload may declare an algorithm
//     (x-amz-checksum-algorithm). Each UploadPart then carries a checksum
//     of that algorithm: "This checksum algorithm must be the same for all
//     parts and it match the checksum value supplied in the
//     CreateMultipartUpload request"
//     (https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPart.html);
//     a part without one, or with another, is refused 400 InvalidRequest,
//     in the words S3 uses ("Checksum Type mismatch occurred, expected
//     checksum Type: sha256, actual checksum Type: null", reported in
//     https://github.com/mem9-ai/drive9/issues/133 and, the other way
//     round, https://github.com/boto/botocore/issues/3216).
//   - A part's checksum is checked against its bytes: 400 BadDigest when
//     they differ, as for PutObject (multipart.go).
//   - CompleteMultipartUpload of an upload created with an algorithm lists
//     each part's checksum of it (CompletedPart: "This checksum is present
//     if the multipart upload request was created with the CRC32 checksum
//     algorithm",
//     https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompletedPart.html,
//     https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html);
//     a part listed without it is refused 400 InvalidRequest ("The upload
//     was created using a crc32 checksum. The complete request must
//     include the checksum for each part. It was missing for part 1 in the
//     request.", reported in https://github.com/apache/opendal/pull/4580),
//     and one listed with another value than the part's is not the part
//     uploaded: 400 InvalidPart.
//   - An upload created without an algorithm takes parts that carry a
//     checksum (aws-sdk-go-v2 adds a CRC32 to every UploadPart by default
//     since early 2025), but a CompleteMultipartUpload that lists such a
//     part by its ETag alone fails with 400 InvalidPart on real S3
//     (https://github.com/aws/aws-sdk-go-v2/issues/3005,
//     https://github.com/aws/aws-sdk-java-v2/issues/6518), and so here.
//
// The completed object of an upload created with an algorithm keeps a
// composite checksum: the checksum of the parts' checksums (their bytes,
// in order), "-" and the number of parts, which GetObject and HeadObject
// return with x-amz-checksum-type COMPOSITE (checking-object-integrity.html,
// "Using part-level checksums for multipart uploads"). CRC64NVME, a full
// object checksum only, is kept for none (the stand-in does not compute
// it).

// completedPart is one Part of a CompleteMultipartUpload request.
type completedPart struct {
	PartNumber        int
	ETag              string
	ChecksumCRC32     string
	ChecksumCRC32C    string
	ChecksumCRC64NVME string
	ChecksumSHA1      string
	ChecksumSHA256    string
}

// checksum is the part's listed checksum of algo (lower case).
func (p completedPart) checksum(algo string) string {
	switch algo {
	case "crc32":
		return p.ChecksumCRC32
	case "crc32c":
		return p.ChecksumCRC32C
	case "crc64nvme":
		return p.ChecksumCRC64NVME
	case "sha1":
		return p.ChecksumSHA1
	case "sha256":
		return p.ChecksumSHA256
	}
	return ""
}

// partChecksumRefused refuses an UploadPart whose checksum algorithm
// (lower case, "" for none) is not the one its upload declared.
func partChecksumRefused(u *upload, algo string) *s3Error {
	if u.algo == "" || algo == u.algo {
		return nil
	}
	actual := algo
	if actual == "" {
		actual = "null"
	}
	return &s3Error{Status: http.StatusBadRequest, Code: "InvalidRequest",
		Message: fmt.Sprintf("Checksum Type mismatch occurred, expected checksum Type: %s, actual checksum Type: %s", u.algo, actual)}
}

// completeChecksumRefused refuses listed, the Complete's entry of the
// uploaded part got, when its checksum is missing or not the part's.
func completeChecksumRefused(u *upload, got part, listed completedPart) *s3Error {
	invalidPart := &s3Error{Status: http.StatusBadRequest, Code: "InvalidPart",
		Message: "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."}
	switch {
	case u.algo != "" && listed.checksum(u.algo) == "":
		return &s3Error{Status: http.StatusBadRequest, Code: "InvalidRequest",
			Message: fmt.Sprintf("The upload was created using a %s checksum. The complete request must include the checksum for each part. It was missing for part %d in the request.", u.algo, listed.PartNumber)}
	case u.algo != "" && listed.checksum(u.algo) != got.checksum:
		return invalidPart
	case u.algo == "" && got.checksumAlgo != "" && listed.checksum(got.checksumAlgo) == "":
		return invalidPart
	case u.algo == "" && got.checksumAlgo != "" && listed.checksum(got.checksumAlgo) != got.checksum:
		return invalidPart
	}
	return nil
}

// compositeChecksum is the completed object's checksum (algorithm, value)
// of an upload created with an algorithm; "" for none.
func compositeChecksum(u *upload, parts []part) (algo, value string) {
	newHash, ok := checksumAlgos[u.algo]
	if !ok {
		return "", ""
	}
	h := newHash()
	for _, p := range parts {
		raw, err := base64.StdEncoding.DecodeString(p.checksum)
		if err != nil {
			return "", ""
		}
		h.Write(raw)
	}
	return u.algo, base64.StdEncoding.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(parts))
}

// checksumType is the x-amz-checksum-type of a stored checksum: a
// multipart upload's composite one ends in "-<parts>".
func checksumType(checksum string) string {
	if strings.Contains(checksum, "-") {
		return "COMPOSITE"
	}
	return "FULL_OBJECT"
}
