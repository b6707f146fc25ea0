"""Check results as JUnit XML, the format CI systems show as test reports."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from ..check._result import Result, Status


def junit_xml(results: Sequence[Result]) -> str:
    """One <testcase> per check: FAIL is a failure, INCONCLUSIVE and ERROR are errors
    (the verdict could not be established), SKIP is skipped with its reason."""
    suite = ET.Element(
        "testsuite",
        name="netprobe",
        tests=str(len(results)),
        time=f"{sum(r.duration for r in results):.3f}",
    )
    counts = {"failures": 0, "errors": 0, "skipped": 0}
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="netprobe.checks",
            name=result.check,
            time=f"{result.duration:.3f}",
        )
        tag = {
            Status.FAIL: "failure",
            Status.INCONCLUSIVE: "error",
            Status.ERROR: "error",
            Status.SKIP: "skipped",
        }.get(result.status)
        if tag is None:
            continue
        counts["failures" if tag == "failure" else "errors" if tag == "error" else tag] += 1
        element = ET.SubElement(case, tag, message=f"{result.status.value}: {result.summary}")
        element.text = result.evidence()
    for key, value in counts.items():
        suite.set(key, str(value))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)
