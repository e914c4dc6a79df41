-- All twelve import types: the organization setup they need (GL and bank
-- accounts), their target tables, and what analysis and file decoding record.
-- Target tables follow the Cases pattern of 0001: keyed by (organization,
-- natural key), no foreign keys (the loader resolves references within the
-- organization, behind its write fence), and provenance of the last writer.

CREATE TABLE gl_accounts (
    id               BIGSERIAL PRIMARY KEY,
    organization_id  BIGINT NOT NULL REFERENCES organizations (id),
    code             TEXT NOT NULL,
    name             TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX gl_accounts_org_code ON gl_accounts (organization_id, lower(code));

CREATE TABLE bank_accounts (
    id               BIGSERIAL PRIMARY KEY,
    organization_id  BIGINT NOT NULL REFERENCES organizations (id),
    number           TEXT NOT NULL,
    name             TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX bank_accounts_org_number ON bank_accounts (organization_id, lower(number));

-- How a file was read: the encoding and sheet it came in, the explicit header
-- mapping of the request, the stored object the chunks index (the original
-- when it is UTF-8 text, else its UTF-8 CSV conversion), and the loading
-- order of the import's files (types that others refer to first).
ALTER TABLE import_files
    ADD COLUMN encoding      TEXT NOT NULL DEFAULT 'utf-8',
    ADD COLUMN sheet_name    TEXT,
    ADD COLUMN data_key      TEXT,
    ADD COLUMN column_mapping JSONB NOT NULL DEFAULT '[]',
    ADD COLUMN load_order    INT NOT NULL DEFAULT 0;

-- The stored analysis report, and the fingerprint of the files it describes:
-- a start with other files than the analysed ones is refused.
ALTER TABLE imports
    ADD COLUMN analysis              JSONB,
    ADD COLUMN analysis_fingerprint  TEXT,
    ADD COLUMN analyzed_at           TIMESTAMPTZ;

ALTER TABLE row_errors ADD COLUMN kind TEXT NOT NULL DEFAULT 'type_error';

-- Target: Basic Information: vital statistics of a case's decedent.
CREATE TABLE case_basic_information (
    organization_id       BIGINT NOT NULL,
    case_number           TEXT NOT NULL,
    sex                   TEXT,
    ssn                   TEXT,
    marital_status        TEXT,
    place_of_birth        TEXT,
    address_line1         TEXT,
    address_line2         TEXT,
    city                  TEXT,
    state                 TEXT,
    zip                   TEXT,
    county                TEXT,
    occupation            TEXT,
    industry              TEXT,
    education             TEXT,
    father_name           TEXT,
    mother_maiden_name    TEXT,
    source_import_id      UUID,
    source_file_id        UUID,
    source_row            BIGINT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, case_number)
);

-- Target: Veteran Information: military service of a case's decedent.
CREATE TABLE case_veterans (
    organization_id       BIGINT NOT NULL,
    case_number           TEXT NOT NULL,
    branch                TEXT NOT NULL,
    service_number        TEXT,
    rank                  TEXT,
    entered_on            DATE,
    discharged_on         DATE,
    war_period            TEXT,
    discharge_type        TEXT,
    flag_requested        BOOLEAN,
    headstone_requested   BOOLEAN,
    source_import_id      UUID,
    source_file_id        UUID,
    source_row            BIGINT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, case_number)
);

-- Target: Family And Friends: people connected to a case. At most one next of kin per case.
CREATE TABLE case_family_members (
    organization_id       BIGINT NOT NULL,
    case_number           TEXT NOT NULL,
    first_name            TEXT NOT NULL,
    last_name             TEXT NOT NULL,
    relationship          TEXT NOT NULL,
    is_next_of_kin        BOOLEAN,
    is_informant          BOOLEAN,
    phone                 TEXT,
    email                 TEXT,
    address_line1         TEXT,
    city                  TEXT,
    state                 TEXT,
    zip                   TEXT,
    source_import_id      UUID,
    source_file_id        UUID,
    source_row            BIGINT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, case_number, first_name, last_name)
);
CREATE INDEX case_family_members_next_of_kin ON case_family_members (organization_id, case_number) WHERE is_next_of_kin;

-- Target: Events: visitations, services and the like of a case.
CREATE TABLE case_events (
    organization_id       BIGINT NOT NULL,
    case_number           TEXT NOT NULL,
    event_type            TEXT NOT NULL,
    starts_at             TIMESTAMPTZ NOT NULL,
    ends_at               TIMESTAMPTZ,
    location_name         TEXT,
    officiant             TEXT,
    notes                 TEXT,
    source_import_id      UUID,
    source_file_id        UUID,
    source_row            BIGINT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, case_number, event_type, starts_at)
);

-- Target: Contract Information: the statement of goods and services of a case.
CREATE TABLE contracts (
    organization_id       BIGINT NOT NULL,
    contract_number       TEXT NOT NULL,
    case_number           TEXT NOT NULL,
    contract_date         DATE NOT NULL,
    total                 NUMERIC(14,2) NOT NULL,
    contract_type         TEXT,
    purchaser_name        TEXT,
    subtotal              NUMERIC(14,2),
    tax                   NUMERIC(14,2),
    discount              NUMERIC(14,2),
    status                TEXT,
    source_import_id      UUID,
    source_file_id        UUID,
    source_row            BIGINT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, contract_number)
);

-- Target: Payments: money received against a contract. A payment without a reference is keyed by ''.
CREATE TABLE payments (
    organization_id       BIGINT NOT NULL,
    contract_number       TEXT NOT NULL,
    paid_on               DATE NOT NULL,
    amount                NUMERIC(14,2) NOT NULL,
    method                TEXT NOT NULL,
    reference             TEXT NOT NULL DEFAULT '',
    payer_name            TEXT,
    case_number           TEXT,
    source_import_id      UUID,
    source_file_id        UUID,
    source_row            BIGINT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, contract_number, reference)
);
CREATE INDEX payments_contract ON payments (organization_id, contract_number);

-- Target: Rolodex: the organization's contacts.
CREATE TABLE rolodex_entries (
    organization_id       BIGINT NOT NULL,
    name                  TEXT NOT NULL,
    category              TEXT NOT NULL,
    contact_first_name    TEXT,
    contact_last_name     TEXT,
    phone                 TEXT,
    email                 TEXT,
    address_line1         TEXT,
    city                  TEXT,
    state                 TEXT,
    zip                   TEXT,
    website               TEXT,
    notes                 TEXT,
    source_import_id      UUID,
    source_file_id        UUID,
    source_row            BIGINT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, name, category)
);

-- Target: Price List: goods and services the organization sells.
CREATE TABLE price_list_items (
    organization_id       BIGINT NOT NULL,
    item_code             TEXT NOT NULL,
    name                  TEXT NOT NULL,
    category              TEXT NOT NULL,
    price                 NUMERIC(14,2) NOT NULL,
    taxable               BOOLEAN,
    active                BOOLEAN,
    gl_account_id         BIGINT,
    source_import_id      UUID,
    source_file_id        UUID,
    source_row            BIGINT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, item_code)
);

-- Target: Client Service Types: the kinds of service the organization offers.
CREATE TABLE client_service_types (
    organization_id       BIGINT NOT NULL,
    code                  TEXT NOT NULL,
    name                  TEXT NOT NULL,
    description           TEXT,
    default_case_type     TEXT,
    active                BOOLEAN,
    source_import_id      UUID,
    source_file_id        UUID,
    source_row            BIGINT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, code)
);

-- Target: Checks written from the organization's bank accounts.
CREATE TABLE checks (
    organization_id       BIGINT NOT NULL,
    bank_account_number   TEXT NOT NULL,
    check_number          TEXT NOT NULL,
    issued_on             DATE NOT NULL,
    payee                 TEXT NOT NULL,
    amount                NUMERIC(14,2) NOT NULL,
    memo                  TEXT,
    case_number           TEXT,
    status                TEXT,
    bank_account_id       BIGINT,
    source_import_id      UUID,
    source_file_id        UUID,
    source_row            BIGINT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, bank_account_number, check_number)
);

-- Target: Bank Transactions: statement lines. Without a reference, the key is 'auto-' and a hash of account, date, amount and description.
CREATE TABLE bank_transactions (
    organization_id       BIGINT NOT NULL,
    bank_account_number   TEXT NOT NULL,
    posted_on             DATE NOT NULL,
    amount                NUMERIC(14,2) NOT NULL,
    description           TEXT NOT NULL,
    reference             TEXT NOT NULL,
    type                  TEXT,
    bank_account_id       BIGINT,
    source_import_id      UUID,
    source_file_id        UUID,
    source_row            BIGINT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, bank_account_number, reference)
);
