package s3store

// SetCopyLimits lowers the size above which s copies with UploadPartCopy parts (MaxCopySize) and
// the size of those parts (CopyPartSize), so that tests exercise the multipart copy with
// objects of a few MiB.
func SetCopyLimits(s *Store, limit, part int64) {
	s.copyLimit, s.copyPart = limit, part
}
