//! The connection request's states (B1…B8 of the seed) and which moves are legal.

/// A request's state, stored by its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Received,
    Accepted,
    Ticket,
    Deploying,
    Replied,
    Reported,
    Invoiced,
    Rejected,
    Cancelled,
}

impl State {
    pub const ALL: [State; 9] = [
        State::Received,
        State::Accepted,
        State::Ticket,
        State::Deploying,
        State::Replied,
        State::Reported,
        State::Invoiced,
        State::Rejected,
        State::Cancelled,
    ];

    /// The steps of the step bar, in order.
    pub const STEPS: [State; 7] = [
        State::Received,
        State::Accepted,
        State::Ticket,
        State::Deploying,
        State::Replied,
        State::Reported,
        State::Invoiced,
    ];

    pub fn code(self) -> &'static str {
        match self {
            State::Received => "received",
            State::Accepted => "accepted",
            State::Ticket => "ticket",
            State::Deploying => "deploying",
            State::Replied => "replied",
            State::Reported => "reported",
            State::Invoiced => "invoiced",
            State::Rejected => "rejected",
            State::Cancelled => "cancelled",
        }
    }

    pub fn from_code(code: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The step number of the seed (B1…B8); none for the closing states.
    pub fn step(self) -> Option<&'static str> {
        Some(match self {
            State::Received => "B1",
            State::Accepted => "B2",
            State::Ticket => "B3",
            State::Deploying => "B4",
            State::Replied => "B5",
            State::Reported => "B6",
            State::Invoiced => "B8",
            State::Rejected | State::Cancelled => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            State::Received => "Đã nhận yêu cầu",
            State::Accepted => "Đã chấp nhận",
            State::Ticket => "Đã tạo PYC",
            State::Deploying => "Đang triển khai",
            State::Replied => "Đã phản hồi đối tác",
            State::Reported => "Đã báo kế toán",
            State::Invoiced => "Đã xuất hóa đơn 0 đ",
            State::Rejected => "Từ chối",
            State::Cancelled => "Đã hủy",
        }
    }

    pub fn is_closed(self) -> bool {
        matches!(self, State::Invoiced | State::Rejected | State::Cancelled)
    }

    /// Whether moving from `self` to `to` is allowed at all (guards come on top).
    pub fn can_move_to(self, to: State) -> bool {
        use State::*;
        match (self, to) {
            (Received, Accepted) | (Received, Rejected) => true,
            (Accepted, Ticket)
            | (Ticket, Deploying)
            | (Deploying, Replied)
            | (Replied, Reported)
            | (Reported, Invoiced)
            // The 0 đ invoice may come before the month-end report.
            | (Replied, Invoiced) => true,
            (from, Cancelled) => !from.is_closed(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_flow_of_the_seed_is_allowed() {
        assert!(State::Received.can_move_to(State::Accepted));
        assert!(!State::Received.can_move_to(State::Ticket), "no skipping B2");
        assert!(!State::Accepted.can_move_to(State::Received), "no going back");
        assert!(State::Deploying.can_move_to(State::Cancelled));
        assert!(!State::Invoiced.can_move_to(State::Cancelled), "closed stays closed");
        assert!(!State::Rejected.can_move_to(State::Accepted));
        for s in State::ALL {
            assert_eq!(State::from_code(s.code()), Some(s));
        }
    }

    #[test]
    fn every_move_outside_the_seed_flow_is_refused() {
        use State::*;
        // Every legal move, written out: any other pair must be refused.
        let allowed = [
            (Received, Accepted),
            (Received, Rejected),
            (Accepted, Ticket),
            (Ticket, Deploying),
            (Deploying, Replied),
            (Replied, Reported),
            (Reported, Invoiced),
            (Replied, Invoiced),
            (Received, Cancelled),
            (Accepted, Cancelled),
            (Ticket, Cancelled),
            (Deploying, Cancelled),
            (Replied, Cancelled),
            (Reported, Cancelled),
        ];
        for from in State::ALL {
            for to in State::ALL {
                assert_eq!(from.can_move_to(to), allowed.contains(&(from, to)), "{from:?} → {to:?}");
            }
            assert_eq!(State::from_code(from.code()), Some(from));
            assert_eq!(from.is_closed(), matches!(from, Invoiced | Rejected | Cancelled), "{from:?}");
        }
        assert_eq!(State::from_code("Received"), None, "codes are exact");
        assert_eq!(State::from_code(""), None);
    }
}
