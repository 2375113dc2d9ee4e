package wire

import "strconv"

// RevisionReportName names the revision report in errors.
const RevisionReportName = "revision report"

// RevisionReportMaxLen is the revision report's length cap in bytes.
const RevisionReportMaxLen = 20

// ParseRevisionReport reads a revision report strictly: a bare number.
func ParseRevisionReport(text string) (uint64, error) {
	if f := checkLen(text, RevisionReportMaxLen); f != nil {
		return 0, f.in(RevisionReportName, text)
	}
	n, f := decimal(text, "revision")
	if f != nil {
		return 0, f.in(RevisionReportName, text)
	}
	return n, nil
}

// FormatRevisionReport writes a revision report (no leading zeros).
func FormatRevisionReport(revision uint64) string { return strconv.FormatUint(revision, 10) }
