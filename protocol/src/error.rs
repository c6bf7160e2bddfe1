//! Business error codes: stable, machine-readable, each with its HTTP status.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// A business outcome that is not success, or an infrastructure failure whose outcome is unknown.
///
/// The string forms are part of the public contract (API.md) and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed JSON, missing or ill-typed field, bad id, amount out of range.
    InvalidRequest,
    /// Missing or bad token.
    Unauthorized,
    /// Token not allowed this account or route.
    Forbidden,
    /// No such account (never opened).
    AccountNotFound,
    /// No such transfer.
    TransferNotFound,
    /// Open with an id already used with different settings.
    AccountExists,
    /// Same idempotency key, different request.
    IdempotencyKeyReused,
    /// Available balance too low.
    InsufficientFunds,
    /// Accounts of different currencies.
    CurrencyMismatch,
    /// Transfer from an account to itself.
    SameAccount,
    /// Account is frozen.
    AccountFrozen,
    /// Account is closed.
    AccountClosed,
    /// The result would exceed 2^53-1.
    BalanceOverflow,
    /// Storage or owner unreachable: the outcome is unknown; retry with the same key.
    Unavailable,
    /// No such route (extension: unknown paths).
    NotFound,
    /// A transfer's receiver did not decide in time, so the sender aborted it: no money moved
    /// (extension: the reason of such a failed transfer).
    TransferAborted,
    /// Refused by admission control before anything ran: retry after `Retry-After`, with the
    /// same idempotency key.
    Overloaded,
    /// No such hold.
    HoldNotFound,
    /// No such disbursement.
    DisbursementNotFound,
    /// Capture or void of a hold that is not `held` (the message names its status).
    HoldNotActive,
    /// A capture of more than the hold's amount.
    CaptureExceedsHold,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 21] = [
        ErrorCode::InvalidRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::AccountNotFound,
        ErrorCode::TransferNotFound,
        ErrorCode::AccountExists,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::InsufficientFunds,
        ErrorCode::CurrencyMismatch,
        ErrorCode::SameAccount,
        ErrorCode::AccountFrozen,
        ErrorCode::AccountClosed,
        ErrorCode::BalanceOverflow,
        ErrorCode::Unavailable,
        ErrorCode::NotFound,
        ErrorCode::TransferAborted,
        ErrorCode::Overloaded,
        ErrorCode::HoldNotFound,
        ErrorCode::DisbursementNotFound,
        ErrorCode::HoldNotActive,
        ErrorCode::CaptureExceedsHold,
    ];

    /// The stable code string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::AccountNotFound => "account_not_found",
            ErrorCode::TransferNotFound => "transfer_not_found",
            ErrorCode::AccountExists => "account_exists",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::InsufficientFunds => "insufficient_funds",
            ErrorCode::CurrencyMismatch => "currency_mismatch",
            ErrorCode::SameAccount => "same_account",
            ErrorCode::AccountFrozen => "account_frozen",
            ErrorCode::AccountClosed => "account_closed",
            ErrorCode::BalanceOverflow => "balance_overflow",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::NotFound => "not_found",
            ErrorCode::TransferAborted => "transfer_aborted",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::HoldNotFound => "hold_not_found",
            ErrorCode::DisbursementNotFound => "disbursement_not_found",
            ErrorCode::HoldNotActive => "hold_not_active",
            ErrorCode::CaptureExceedsHold => "capture_exceeds_hold",
        }
    }

    /// The HTTP status that carries this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::AccountNotFound
            | ErrorCode::TransferNotFound
            | ErrorCode::NotFound
            | ErrorCode::HoldNotFound
            | ErrorCode::DisbursementNotFound => 404,
            ErrorCode::AccountExists => 409,
            ErrorCode::IdempotencyKeyReused
            | ErrorCode::InsufficientFunds
            | ErrorCode::CurrencyMismatch
            | ErrorCode::SameAccount
            | ErrorCode::AccountFrozen
            | ErrorCode::AccountClosed
            | ErrorCode::BalanceOverflow
            | ErrorCode::TransferAborted
            | ErrorCode::HoldNotActive
            | ErrorCode::CaptureExceedsHold => 422,
            ErrorCode::Unavailable | ErrorCode::Overloaded => 503,
        }
    }

    /// A default human sentence for the code.
    pub fn default_message(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "the request is malformed",
            ErrorCode::Unauthorized => "a valid token is required",
            ErrorCode::Forbidden => "the token does not allow this",
            ErrorCode::AccountNotFound => "no such account",
            ErrorCode::TransferNotFound => "no such transfer",
            ErrorCode::AccountExists => "an account with this id exists with other settings",
            ErrorCode::IdempotencyKeyReused => {
                "this idempotency key was used for a different request"
            }
            ErrorCode::InsufficientFunds => "the available balance is too low",
            ErrorCode::CurrencyMismatch => "the accounts hold different currencies",
            ErrorCode::SameAccount => "a transfer needs two different accounts",
            ErrorCode::AccountFrozen => "the account is frozen",
            ErrorCode::AccountClosed => "the account is closed",
            ErrorCode::BalanceOverflow => "the resulting balance would exceed 2^53-1",
            ErrorCode::Unavailable => {
                "the outcome is unknown (storage or owner unreachable); retry with the same idempotency key"
            }
            ErrorCode::NotFound => "no such route",
            ErrorCode::TransferAborted => {
                "the receiver did not answer in time, so the transfer was aborted; no money moved"
            }
            ErrorCode::Overloaded => {
                "the node is overloaded and nothing ran; retry after Retry-After with the same idempotency key"
            }
            ErrorCode::HoldNotFound => "no such hold",
            ErrorCode::DisbursementNotFound => "no such disbursement",
            ErrorCode::HoldNotActive => "the hold is no longer held",
            ErrorCode::CaptureExceedsHold => "the capture amount is above the held amount",
        }
    }

    /// True for codes that mean "outcome unknown" rather than a decided rejection.
    pub fn is_outcome_unknown(self) -> bool {
        self == ErrorCode::Unavailable
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as clients see it: a stable code and a human sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// The stable code.
    pub code: ErrorCode,
    /// A human sentence.
    pub message: String,
}

impl ApiError {
    /// An error with a specific sentence.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError::new(code, code.default_message())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The JSON body of an error response: `{"error": {"code", "message"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ApiError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialize_to_their_stable_strings() {
        // Proves serde and as_str agree for every code, so the wire form is the documented one.
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, code);
        }
    }
}
