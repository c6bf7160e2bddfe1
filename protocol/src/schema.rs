//! OpenAPI schemas of the validated scalars ([`AccountId`], [`Currency`], [`Amount`],
//! [`IdempotencyKey`], [`TransferId`]): what their constructors accept, as the
//! `GET /v1/openapi.json` description shows it. The structs and enums of the API derive
//! theirs (`utoipa::ToSchema`) from the same serde attributes that shape the wire form.

use crate::ids::{ACCOUNT_ID_LEN_MAX, IDEMPOTENCY_KEY_LEN_MAX, TRANSFER_ID_LEN_MAX};
use crate::{AccountId, Amount, Currency, IdempotencyKey, TransferId, AMOUNT_MAX};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// A string schema: description, pattern, length bounds, one example.
fn string(description: &str, pattern: &str, len_max: usize, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .min_length(Some(1))
        .max_length(Some(len_max))
        .examples([serde_json::json!(example)])
        .into()
}

impl PartialSchema for AccountId {
    fn schema() -> RefOr<Schema> {
        string(
            "An account id: 1 to 64 characters of A-Z a-z 0-9 _ - . : (an id with `~` names \
             a shard inside the system and is refused).",
            "^[A-Za-z0-9_.:-]+$",
            ACCOUNT_ID_LEN_MAX,
            "alice",
        )
    }
}
impl ToSchema for AccountId {}

impl PartialSchema for Currency {
    fn schema() -> RefOr<Schema> {
        string(
            "A currency: three upper-case letters.",
            "^[A-Z]{3}$",
            3,
            "EUR",
        )
    }
}
impl ToSchema for Currency {}

impl PartialSchema for IdempotencyKey {
    fn schema() -> RefOr<Schema> {
        string(
            "An idempotency key: 1 to 255 printable ASCII characters, no space.",
            "^[!-~]+$",
            IDEMPOTENCY_KEY_LEN_MAX,
            "order-4711",
        )
    }
}
impl ToSchema for IdempotencyKey {}

impl PartialSchema for TransferId {
    fn schema() -> RefOr<Schema> {
        string(
            "The id of a transfer (`t_...`), hold (`h_...`) or disbursement (`d_...`), chosen by \
             the node.",
            "^[A-Za-z0-9_.:-]+$",
            TRANSFER_ID_LEN_MAX,
            "t_0193a5b2c4d1f00dfeedc0ffee42",
        )
    }
}
impl ToSchema for TransferId {}

impl PartialSchema for Amount {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .description(Some(
                "An amount in minor units (cents): an integer from 1 to 2^53-1, never a float.",
            ))
            .minimum(Some(1))
            .maximum(Some(AMOUNT_MAX as f64))
            .examples([serde_json::json!(100)])
            .into()
    }
}
impl ToSchema for Amount {}
