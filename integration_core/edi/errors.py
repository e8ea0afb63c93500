"""The X12 error codes, one enum per acknowledgment element, and the error record.

Errors are data: the parser, the validator and the mapper return them, never raise them. Each
code's value is the code the acknowledgment carries (TA105, AK905, AK502, AK304, AK403), so the
997 / TA1 writer copies it as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class NoteCode(StrEnum):
    """TA105 (I18): what is wrong with the interchange envelope."""

    CONTROL_NUMBER_MISMATCH = "001"
    VERSION_NOT_SUPPORTED = "003"
    SEGMENT_TERMINATOR = "004"
    SENDER_QUALIFIER = "005"
    SENDER_ID = "006"
    RECEIVER_QUALIFIER = "007"
    RECEIVER_ID = "008"
    AUTH_QUALIFIER = "010"
    AUTH_VALUE = "011"
    SECURITY_QUALIFIER = "012"
    SECURITY_VALUE = "013"
    DATE = "014"
    TIME = "015"
    STANDARDS_ID = "016"
    VERSION_ID = "017"
    CONTROL_NUMBER = "018"
    ACK_REQUESTED = "019"
    TEST_INDICATOR = "020"
    GROUP_COUNT = "021"
    CONTROL_STRUCTURE = "022"
    PREMATURE_END = "023"
    CONTENT = "024"
    DUPLICATE = "025"
    ELEMENT_SEPARATOR = "026"
    COMPONENT_SEPARATOR = "027"


class GroupCode(StrEnum):
    """AK905 (716): what is wrong with a functional group's envelope."""

    NOT_SUPPORTED = "1"
    VERSION_NOT_SUPPORTED = "2"
    TRAILER_MISSING = "3"
    CONTROL_NUMBER_MISMATCH = "4"
    SET_COUNT = "5"
    CONTROL_NUMBER_SYNTAX = "6"


class SetCode(StrEnum):
    """AK502 (718): what is wrong with a transaction set as a whole."""

    NOT_SUPPORTED = "1"
    TRAILER_MISSING = "2"
    CONTROL_NUMBER_MISMATCH = "3"
    SEGMENT_COUNT = "4"
    SEGMENTS_IN_ERROR = "5"
    INVALID_IDENTIFIER = "6"
    INVALID_CONTROL_NUMBER = "7"
    CONTROL_NUMBER_NOT_UNIQUE = "23"


class SegmentCode(StrEnum):
    """AK304 (720): what is wrong with one segment's place in the set."""

    UNRECOGNIZED = "1"
    UNEXPECTED = "2"
    MANDATORY_MISSING = "3"
    LOOP_OVER_MAX = "4"
    OVER_MAX_USE = "5"
    NOT_IN_SET = "6"
    OUT_OF_SEQUENCE = "7"
    ELEMENT_ERRORS = "8"


class ElementCode(StrEnum):
    """AK403 (723): what is wrong with one data element."""

    MANDATORY_MISSING = "1"
    CONDITIONAL_MISSING = "2"
    TOO_MANY = "3"
    TOO_SHORT = "4"
    TOO_LONG = "5"
    INVALID_CHARACTER = "6"
    INVALID_CODE = "7"
    INVALID_DATE = "8"
    INVALID_TIME = "9"
    EXCLUSION = "10"


class AppCode(StrEnum):
    """Ours, not X12's: the set is well-formed but cannot become canonical messages (an 824's
    business, not a 997's), or the input was refused before parsing."""

    TOTAL_MISMATCH = "total_mismatch"
    INVALID_CONTENT = "invalid_content"
    TOO_LARGE = "too_large"
    INTERNAL = "internal"


Code = NoteCode | GroupCode | SetCode | SegmentCode | ElementCode | AppCode

LEVEL: dict[type, str] = {
    NoteCode: "interchange",
    GroupCode: "group",
    SetCode: "set",
    SegmentCode: "segment",
    ElementCode: "element",
    AppCode: "application",
}


@dataclass(frozen=True, slots=True)
class EdiError:
    """One finding. Positions are 1-based; 0 means "not applicable".

    `segment_position` counts from ST (ST is 1) for set, segment and element errors, as AK302
    does; for interchange and group errors it counts from ISA. `group` and `set_index` are the
    0-based indexes of the group in the interchange and of the set in its group (-1: none).
    """

    code: Code
    message: str
    segment_id: str = ""
    segment_position: int = 0
    element_position: int = 0
    component_position: int = 0
    element_ref: int = 0
    value: str = ""
    loop: str = ""
    group: int = -1
    set_index: int = -1

    @property
    def level(self) -> str:
        return LEVEL[type(self.code)]
