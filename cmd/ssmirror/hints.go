package main

import (
	"errors"
	"strings"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/sync"
)

// The libraries name their settings in their own terms (Options fields), never this command's
// flags; flagHint says which flag changes the setting an error is about.
func flagHint(err error) string {
	var empty *sync.EmptySelectionError
	var mode *sync.ModeChangeError
	switch {
	case errors.As(err, &mode):
		if mode.Recorded.Publish == sync.ModeCurated {
			return "give --signing-key with the mirror's key, or --allow-mode-change if the change is meant"
		}
		return "drop --signing-key to keep it verbatim, or give --allow-mode-change if the change is meant"
	case errors.As(err, &empty):
		return "give --allow-empty to run with an empty selection anyway"
	case errors.Is(err, sync.ErrNoKeyring):
		return "give --keyring FILE to verify it, or --no-verify to read it unchecked"
	case errors.Is(err, sync.ErrTooLarge):
		return "the limit is --max-file-size"
	case errors.Is(err, sync.ErrTooSlow):
		return "the minimum rate is --min-rate"
	case errors.Is(err, s3store.ErrBufferBudget):
		return "the budget is --upload-buffers; the part size --part-size"
	case errors.Is(err, store.ErrOverLimit):
		return "the metadata limit is --metadata-max-size"
	case errors.Is(err, sync.ErrMetadataOnlyCurated):
		return "--no-item-download cannot be combined with --signing-key"
	}
	return ""
}

// withHint is err's message followed by its flagHint, on a line of its own after a message of
// several lines.
func withHint(err error) string {
	msg := err.Error()
	h := flagHint(err)
	switch {
	case h == "":
		return msg
	case strings.Contains(msg, "\n"):
		return msg + "\n" + h
	}
	return msg + " (" + h + ")"
}
