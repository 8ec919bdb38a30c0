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
        kind -> Text,
        phone -> Nullable<Text>,
        email_verified_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    partners (id) {
        id -> Int8,
        code -> Text,
        name -> Text,
        kind -> Text,
        mail_domains -> Text,
        mail_addresses -> Text,
        leader_confirmation_required -> Bool,
        leader_addresses -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        cms_admin_name -> Text,
        signing_company -> Text,
        virtual_brand -> Text,
        virtual_point -> Text,
        accept_template -> Text,
        reply_template -> Text,
        disabled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    mail_blobs (id) {
        id -> Int8,
        sha256 -> Text,
        raw -> Binary,
        size -> Int8,
        source -> Text,
        file_name -> Nullable<Text>,
        status -> Text,
        error -> Nullable<Text>,
        received_at -> Timestamp,
        processed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    mail_threads (id) {
        id -> Int8,
        partner_id -> Nullable<Int8>,
        subject -> Text,
        norm_subject -> Text,
        first_at -> Timestamp,
        last_at -> Timestamp,
        request_id -> Nullable<Int8>,
    }
}

diesel::table! {
    mail_messages (id) {
        id -> Int8,
        blob_id -> Int8,
        message_id -> Nullable<Text>,
        in_reply_to -> Text,
        refs -> Text,
        from_addr -> Text,
        from_name -> Text,
        to_addrs -> Text,
        cc_addrs -> Text,
        reply_to -> Text,
        subject -> Text,
        sent_at -> Nullable<Timestamp>,
        text_body -> Text,
        html_body -> Nullable<Text>,
        forwarded_from -> Nullable<Text>,
        forwarded_name -> Nullable<Text>,
        partner_id -> Nullable<Int8>,
        kind -> Text,
        kind_reason -> Text,
        thread_id -> Int8,
        status -> Text,
        status_reason -> Nullable<Text>,
        suggestions -> Text,
        notes -> Text,
        created_at -> Timestamp,
        search_text -> Nullable<Text>,
    }
}

diesel::table! {
    mail_attachments (id) {
        id -> Int8,
        message_id -> Int8,
        file_name -> Text,
        content_type -> Text,
        size -> Int8,
        content -> Nullable<Binary>,
        omitted_reason -> Nullable<Text>,
    }
}

diesel::table! {
    mail_imap_mailboxes (id) {
        id -> Int8,
        account -> Text,
        uid_validity -> Nullable<Int8>,
        last_uid -> Int8,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        last_ok_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        last_error_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    mail_rules (id) {
        id -> Int8,
        kind -> Text,
        pattern -> Text,
        enabled -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    customers (id) {
        id -> Int8,
        name -> Text,
        tax_code -> Text,
        address -> Text,
        search_key -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    merchants (id) {
        id -> Int8,
        name -> Text,
        contact_name -> Text,
        phone -> Text,
        email -> Text,
        search_key -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        phone_key -> Text,
    }
}

diesel::table! {
    points (id) {
        id -> Int8,
        merchant_id -> Int8,
        name -> Text,
        address -> Text,
        contact_name -> Text,
        phone -> Text,
        pos_parent -> Text,
        pos_id -> Text,
        point_code -> Text,
        search_key -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    requests (id) {
        id -> Int8,
        partner_id -> Int8,
        merchant_id -> Int8,
        state -> Text,
        version -> Int8,
        opening_mail_id -> Nullable<Int8>,
        opened_on -> Timestamp,
        assignee_id -> Nullable<Int8>,
        closed_reason -> Nullable<Text>,
        created_by -> Nullable<Int8>,
        state_since -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    request_points (request_id, point_id) {
        request_id -> Int8,
        point_id -> Int8,
    }
}

diesel::table! {
    confirmations (id) {
        id -> Int8,
        request_id -> Int8,
        kind -> Text,
        mail_message_id -> Nullable<Int8>,
        recorded_by -> Nullable<Int8>,
        reason -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_by -> Nullable<Int8>,
    }
}

diesel::table! {
    request_events (id) {
        id -> Int8,
        request_id -> Int8,
        at -> Timestamp,
        user_id -> Nullable<Int8>,
        actor -> Text,
        kind -> Text,
        from_state -> Nullable<Text>,
        to_state -> Nullable<Text>,
        body -> Text,
        mail_message_id -> Nullable<Int8>,
    }
}

diesel::table! {
    jobs (id) {
        id -> Int8,
        kind -> Text,
        payload -> Text,
        unique_key -> Nullable<Text>,
        run_at -> Timestamp,
        attempts -> Int8,
        max_attempts -> Int8,
        locked_until -> Nullable<Timestamp>,
        locked_by -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        done_at -> Nullable<Timestamp>,
        dead_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    job_events (id) {
        id -> Int8,
        job_id -> Int8,
        at -> Timestamp,
        event -> Text,
        worker -> Nullable<Text>,
        message -> Nullable<Text>,
    }
}

diesel::table! {
    mail_outbox (id) {
        id -> Int8,
        status -> Text,
        from_addr -> Text,
        to_addrs -> Text,
        cc_addrs -> Text,
        subject -> Text,
        message_id -> Text,
        in_reply_to -> Nullable<Text>,
        refs -> Text,
        text_body -> Text,
        raw -> Binary,
        attachment_names -> Text,
        request_id -> Nullable<Int8>,
        attempts -> Int8,
        error -> Nullable<Text>,
        created_by -> Nullable<Int8>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    pyc_templates (id) {
        id -> Int8,
        kind -> Text,
        version -> Int8,
        body -> Text,
        items -> Text,
        created_by -> Nullable<Int8>,
        created_at -> Timestamp,
        disabled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    pyc_counters (year) {
        year -> Int8,
        last -> Int8,
    }
}

diesel::table! {
    pycs (id) {
        id -> Int8,
        number -> Text,
        request_id -> Int8,
        state -> Text,
        version -> Int8,
        customer_name -> Text,
        deployment_type -> Text,
        contract_code -> Text,
        signing_rep -> Text,
        product -> Text,
        brand -> Text,
        point_applied -> Text,
        location -> Text,
        support_person -> Text,
        support_phone -> Text,
        notes -> Text,
        template_id -> Int8,
        pos_parent -> Text,
        pos_id -> Text,
        point_code -> Text,
        key1_enc -> Nullable<Text>,
        key2_enc -> Nullable<Text>,
        screenshot -> Nullable<Binary>,
        screenshot_type -> Nullable<Text>,
        invoice_no -> Nullable<Text>,
        invoice_date -> Nullable<Timestamp>,
        created_by -> Nullable<Int8>,
        deployed_by -> Nullable<Int8>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deployed_at -> Nullable<Timestamp>,
        technician_id -> Nullable<Int8>,
    }
}

diesel::table! {
    pyc_checklist (id) {
        id -> Int8,
        pyc_id -> Int8,
        position -> Int8,
        label -> Text,
        required -> Bool,
        done_by -> Nullable<Int8>,
        done_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    reconciliations (id) {
        id -> Int8,
        partner_id -> Int8,
        month -> Text,
        file_name -> Text,
        file -> Binary,
        mapping -> Nullable<Text>,
        result -> Nullable<Text>,
        matched -> Int8,
        only_ours -> Int8,
        only_theirs -> Int8,
        differing -> Int8,
        created_by -> Nullable<Int8>,
        created_at -> Timestamp,
        run_at -> Nullable<Timestamp>,
        result_zst -> Nullable<Binary>,
        result_head -> Nullable<Text>,
    }
}

diesel::table! {
    recon_mappings (partner_id) {
        partner_id -> Int8,
        mapping -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    user_identities (id) {
        id -> Int8,
        user_id -> Int8,
        provider -> Text,
        subject -> Text,
        email -> Text,
        created_at -> Timestamp,
        last_login_at -> Timestamp,
    }
}

diesel::table! {
    account_tokens (id) {
        id -> Int8,
        user_id -> Int8,
        purpose -> Text,
        token_hash -> Text,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    plans (id) {
        id -> Int8,
        code -> Text,
        name -> Text,
        monthly_tx_quota -> Int8,
        bank_account_limit -> Int8,
        sync_interval_minutes -> Int8,
        price_vnd -> Int8,
        is_free -> Bool,
        is_trial -> Bool,
        position -> Int8,
    }
}

diesel::table! {
    businesses (id) {
        id -> Int8,
        name -> Text,
        website -> Text,
        features -> Text,
        plan_id -> Int8,
        trial_plan_id -> Nullable<Int8>,
        trial_started_at -> Nullable<Timestamp>,
        trial_ends_at -> Nullable<Timestamp>,
        hub_merchant_id -> Nullable<Int8>,
        search_key -> Text,
        created_by -> Int8,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    business_members (id) {
        id -> Int8,
        business_id -> Int8,
        user_id -> Int8,
        role -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    business_invitations (id) {
        id -> Int8,
        business_id -> Int8,
        email -> Text,
        role -> Text,
        token_hash -> Text,
        invited_by -> Int8,
        expires_at -> Timestamp,
        accepted_at -> Nullable<Timestamp>,
        accepted_by -> Nullable<Int8>,
        revoked_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    bank_accounts (id) {
        id -> Int8,
        business_id -> Int8,
        bank_code -> Text,
        bank_name -> Text,
        account_number -> Text,
        account_name -> Text,
        method -> Text,
        connect_status -> Text,
        created_at -> Timestamp,
        removed_at -> Nullable<Timestamp>,
        connection_id -> Nullable<Int8>,
        bank_bin -> Text,
        external_id -> Text,
        balance -> Nullable<Int8>,
        sync_from -> Nullable<Timestamp>,
        sync_cursor -> Nullable<Text>,
        last_sync_at -> Nullable<Timestamp>,
        next_sync_at -> Nullable<Timestamp>,
        rate_limited_until -> Nullable<Timestamp>,
        rate_limit_source -> Nullable<Text>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    plan_requests (id) {
        id -> Int8,
        business_id -> Int8,
        plan_id -> Int8,
        requested_by -> Int8,
        note -> Text,
        status -> Text,
        created_at -> Timestamp,
        handled_at -> Nullable<Timestamp>,
        handled_by -> Nullable<Int8>,
    }
}

diesel::table! {
    banks (id) {
        id -> Int8,
        bin -> Text,
        code -> Text,
        short_name -> Text,
        name -> Text,
        casso_code_name -> Text,
        official_api -> Bool,
    }
}

diesel::table! {
    bank_connections (id) {
        id -> Int8,
        business_id -> Int8,
        bank_bin -> Text,
        method -> Text,
        status -> Text,
        credentials_sealed -> Nullable<Text>,
        tokens_sealed -> Nullable<Text>,
        token_expires_at -> Nullable<Timestamp>,
        oauth_state -> Nullable<Text>,
        external_ref -> Nullable<Text>,
        push_key -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_by -> Int8,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    request_counts (state, partner_id) {
        state -> Text,
        partner_id -> Int8,
        n -> Int8,
    }
}

diesel::table! {
    first_deployments (point_id, partner_id) {
        point_id -> Int8,
        partner_id -> Int8,
        pyc_id -> Int8,
        deployed_at -> Timestamp,
    }
}

diesel::table! {
    business_usage (business_id, month, slot) {
        business_id -> Int8,
        month -> Text,
        slot -> Int2,
        n -> Int8,
    }
}

diesel::table! {
    transaction_days (business_id, day, slot) {
        business_id -> Int8,
        day -> Date,
        n -> Int8,
        money_in -> Int8,
        money_out -> Int8,
        slot -> Int2,
    }
}

diesel::table! {
    transactions (id) {
        id -> Int8,
        business_id -> Int8,
        account_id -> Int8,
        bank_tx_id -> Text,
        amount -> Int8,
        description -> Text,
        balance -> Nullable<Int8>,
        occurred_at -> Timestamp,
        pending -> Bool,
        counter_account -> Text,
        counter_name -> Text,
        counter_bank_id -> Text,
        counter_bank_name -> Text,
        virtual_account -> Text,
        virtual_account_name -> Text,
        payment_channel -> Text,
        source -> Text,
        search_key -> Text,
        created_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    link_handoffs (id) {
        id -> Int8,
        business_id -> Int8,
        user_id -> Int8,
        bank_bin -> Text,
        token_hash -> Text,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    integrations (id) {
        id -> Int8,
        business_id -> Int8,
        channel -> Text,
        name -> Text,
        url -> Text,
        format -> Text,
        secret_sealed -> Text,
        income_only -> Bool,
        account_ids -> Text,
        enabled -> Bool,
        disabled_reason -> Nullable<Text>,
        failing_since -> Nullable<Timestamp>,
        created_by -> Int8,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
        fields -> Text,
        settings -> Text,
        invite_code -> Nullable<Text>,
    }
}

diesel::table! {
    integration_recipients (id) {
        id -> Int8,
        integration_id -> Int8,
        kind -> Text,
        address -> Text,
        display_name -> Text,
        status -> Text,
        status_note -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    zalo_tokens (id) {
        id -> Int8,
        access_sealed -> Text,
        refresh_sealed -> Text,
        access_expires_at -> Timestamp,
        generation -> Int8,
        refreshing_until -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Int8,
        business_id -> Int8,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        created_by -> Int8,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Int8,
        api_key_id -> Int8,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    zalo_replies (id) {
        id -> Int8,
        event_id -> Int8,
        sender_id -> Text,
        user_id -> Text,
        text -> Text,
        claimed_at -> Nullable<Timestamp>,
        sent_at -> Nullable<Timestamp>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    zalo_events (id) {
        id -> Int8,
        event_name -> Text,
        sender_id -> Text,
        body -> Text,
        received_at -> Timestamp,
        processed_at -> Nullable<Timestamp>,
        outcome -> Nullable<Text>,
    }
}

diesel::table! {
    deliveries (id) {
        id -> Int8,
        integration_id -> Int8,
        transaction_id -> Int8,
        recipient -> Text,
        status -> Text,
        attempts -> Int8,
        last_status -> Nullable<Int8>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    delivery_attempts (id) {
        id -> Int8,
        delivery_id -> Int8,
        at -> Timestamp,
        attempt -> Int8,
        status_code -> Nullable<Int8>,
        duration_ms -> Int8,
        excerpt -> Text,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    oauth_apps (id) {
        id -> Int8,
        owner_id -> Int8,
        name -> Text,
        website -> Text,
        client_id -> Text,
        secret_hash -> Text,
        redirect_uris -> Text,
        created_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    oauth_grants (id) {
        id -> Int8,
        app_id -> Int8,
        business_id -> Int8,
        user_id -> Int8,
        scopes -> Text,
        refresh_hash -> Nullable<Text>,
        previous_refresh_hash -> Nullable<Text>,
        refresh_expires_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    oauth_codes (id) {
        id -> Int8,
        code_hash -> Text,
        app_id -> Int8,
        business_id -> Int8,
        user_id -> Int8,
        redirect_uri -> Text,
        scopes -> Text,
        code_challenge -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        grant_id -> Nullable<Int8>,
    }
}

diesel::table! {
    oauth_tokens (id) {
        id -> Int8,
        grant_id -> Int8,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(audit_log -> users (user_id));
diesel::joinable!(pycs -> requests (request_id));
diesel::joinable!(pyc_checklist -> pycs (pyc_id));
diesel::joinable!(job_events -> jobs (job_id));
diesel::joinable!(points -> merchants (merchant_id));
diesel::joinable!(requests -> partners (partner_id));
diesel::table! {
    staff_mail_prefs (user_id) {
        user_id -> Int8,
        on_assign -> Bool,
        on_review -> Bool,
        on_pyc_created -> Bool,
        on_digest -> Bool,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    ageing_thresholds (state) {
        state -> Text,
        days -> Int8,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(requests -> merchants (merchant_id));
diesel::joinable!(request_points -> requests (request_id));
diesel::joinable!(request_points -> points (point_id));
diesel::joinable!(confirmations -> requests (request_id));
diesel::joinable!(request_events -> requests (request_id));
diesel::joinable!(mail_messages -> mail_blobs (blob_id));
diesel::joinable!(mail_messages -> mail_threads (thread_id));
diesel::joinable!(mail_messages -> partners (partner_id));
diesel::joinable!(mail_threads -> partners (partner_id));
diesel::joinable!(mail_attachments -> mail_messages (message_id));
diesel::joinable!(user_identities -> users (user_id));
diesel::joinable!(business_members -> businesses (business_id));
diesel::joinable!(business_members -> users (user_id));
diesel::joinable!(business_invitations -> businesses (business_id));
diesel::joinable!(bank_accounts -> businesses (business_id));
diesel::joinable!(plan_requests -> businesses (business_id));
diesel::joinable!(businesses -> merchants (hub_merchant_id));
diesel::joinable!(bank_connections -> businesses (business_id));
diesel::joinable!(bank_accounts -> bank_connections (connection_id));
diesel::joinable!(transactions -> bank_accounts (account_id));
diesel::joinable!(deliveries -> integrations (integration_id));
diesel::joinable!(api_tokens -> api_keys (api_key_id));
diesel::joinable!(oauth_grants -> oauth_apps (app_id));
diesel::joinable!(oauth_tokens -> oauth_grants (grant_id));
diesel::joinable!(integration_recipients -> integrations (integration_id));
diesel::joinable!(deliveries -> transactions (transaction_id));
diesel::joinable!(delivery_attempts -> deliveries (delivery_id));

diesel::table! {
    form_submissions (user_id, token) {
        user_id -> Int8,
        token -> Text,
        location -> Text,
        message -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    statement_imports (id) {
        id -> Int8,
        business_id -> Int8,
        account_id -> Int8,
        file_name -> Text,
        file -> Binary,
        status -> Text,
        silent -> Bool,
        mapping -> Nullable<Text>,
        new_count -> Int8,
        known_count -> Int8,
        skipped -> Nullable<Text>,
        created_by -> Nullable<Int8>,
        created_at -> Timestamp,
        imported_at -> Nullable<Timestamp>,
        total_rows -> Int8,
        done_rows -> Int8,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    statement_layouts (bank_code, signature) {
        bank_code -> Text,
        signature -> Text,
        mapping -> Text,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(statement_imports -> bank_accounts (account_id));

diesel::allow_tables_to_appear_in_same_query!(
    business_usage,
    statement_imports,
    statement_layouts,
    form_submissions,
    staff_mail_prefs,
    ageing_thresholds,
    transaction_days,
    request_counts,
    first_deployments,
    api_keys,
    api_tokens,
    oauth_apps,
    oauth_grants,
    oauth_tokens,
    integration_recipients,
    zalo_tokens,
    zalo_events,
    zalo_replies,
    audit_log,
    login_failures,
    users,
    partners,
    mail_blobs,
    mail_threads,
    mail_messages,
    mail_attachments,
    mail_imap_mailboxes,
    mail_rules,
    customers,
    merchants,
    points,
    requests,
    request_points,
    confirmations,
    request_events,
    jobs,
    job_events,
    mail_outbox,
    pyc_templates,
    pyc_counters,
    pycs,
    pyc_checklist,
    reconciliations,
    recon_mappings,
    user_identities,
    account_tokens,
    plans,
    businesses,
    business_members,
    business_invitations,
    bank_accounts,
    plan_requests,
    banks,
    bank_connections,
    transactions,
    link_handoffs,
    integrations,
    deliveries,
    delivery_attempts,
);
