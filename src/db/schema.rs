// @generated shape: kept in step with migrations/postgres (diesel print-schema); shared by SQLite.

diesel::table! {
    audit_log (id) {
        id -> Int8,
        at -> Timestamp,
        user_id -> Nullable<Int8>,
        actor -> Text,
        entity_type -> Text,
        entity_id -> Text,
        action -> Text,
        before_json -> Nullable<Text>,
        after_json -> Nullable<Text>,
    }
}

diesel::table! {
    login_failures (id) {
        id -> Int8,
        throttle_key -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        roles -> Text,
        disabled -> Bool,
        session_epoch -> Int8,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(audit_log -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(audit_log, login_failures, users);
