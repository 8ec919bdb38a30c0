//! A PYC's states, stored by their code: draft → reviewed (B7) → created (B8) →
//! deployed → invoiced (0 đ). Which moves are legal lives here, beside the request's
//! own states in `crate::hub::state`.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PycState {
    Draft,
    Reviewed,
    Created,
    Deployed,
    Invoiced,
}

impl PycState {
    pub const ALL: [PycState; 5] =
        [PycState::Draft, PycState::Reviewed, PycState::Created, PycState::Deployed, PycState::Invoiced];

    pub fn code(self) -> &'static str {
        match self {
            PycState::Draft => "draft",
            PycState::Reviewed => "reviewed",
            PycState::Created => "created",
            PycState::Deployed => "deployed",
            PycState::Invoiced => "invoiced",
        }
    }

    pub fn from_code(code: &str) -> Option<PycState> {
        PycState::ALL.into_iter().find(|s| s.code() == code)
    }

    pub fn label(self) -> &'static str {
        match self {
            PycState::Draft => "Nháp",
            PycState::Reviewed => "Đã xem lại (B7)",
            PycState::Created => "Đã tạo (B8)",
            PycState::Deployed => "Đã triển khai",
            PycState::Invoiced => "Đã xuất hóa đơn 0 đ",
        }
    }

    /// The label of a stored code; "?" for a code this version does not know.
    pub fn label_of(code: &str) -> &'static str {
        PycState::from_code(code).map_or("?", PycState::label)
    }

    /// The moves made by hand on the PYC page (B7 review, B8 create). Deploying and
    /// invoicing have actions of their own, with their checks.
    pub fn can_advance_to(self, to: PycState) -> bool {
        matches!((self, to), (PycState::Draft, PycState::Reviewed) | (PycState::Reviewed, PycState::Created))
    }

    /// Deployed or invoiced: the technician's work is over.
    pub fn is_done(self) -> bool {
        matches!(self, PycState::Deployed | PycState::Invoiced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_only_review_and_create_advance() {
        for s in PycState::ALL {
            assert_eq!(PycState::from_code(s.code()), Some(s));
        }
        assert_eq!(PycState::from_code("Draft"), None);
        let moves: Vec<_> = PycState::ALL
            .iter()
            .flat_map(|a| PycState::ALL.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.can_advance_to(*b))
            .collect();
        assert_eq!(moves, [(PycState::Draft, PycState::Reviewed), (PycState::Reviewed, PycState::Created)]);
    }
}
