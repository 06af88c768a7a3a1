// Command putloop is the baseline of the publish benchmark: walk a
// directory and PutObject every file with 16 workers, nothing else (no
// hashing, no headers, no manifest), with the SDK's default configuration:
// what a team writes first.
//
//	putloop -endpoint URL -bucket B -prefix P DIR
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"
)

func main() {
	endpoint := flag.String("endpoint", "", "S3 endpoint")
	bucket := flag.String("bucket", "", "bucket")
	prefix := flag.String("prefix", "", "key prefix")
	workers := flag.Int("workers", 16, "PutObject calls in flight")
	flag.Parse()
	if err := run(*endpoint, *bucket, *prefix, flag.Arg(0), *workers); err != nil {
		fmt.Fprintln(os.Stderr, "putloop:", err)
		os.Exit(1)
	}
}

func run(endpoint, bucket, prefix, dir string, workers int) error {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		return err
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
	})
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		g.Go(func() error {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = c.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + filepath.ToSlash(rel)), Body: f})
			return err
		})
		return nil
	})
	if werr := g.Wait(); err == nil {
		err = werr
	}
	return err
}
