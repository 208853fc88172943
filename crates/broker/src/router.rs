//! Subscriptions and fan-out.
//!
//! Filters without wildcards (every device's own command topic) sit in a hash map, so a
//! command to one of 25,000 devices costs one lookup; wildcard filters are few (dashboards,
//! the fleet-wide alarm topic) and are matched one by one. Each subscriber gets a message
//! once, at the highest QoS of its matching filters, however many of them overlap.
//!
//! The router also keeps who holds each client id (a takeover needs the holder's consent,
//! `fleet_core::access::Holder`) and, for subscriptions whose filter reaches beyond the
//! subscriber's own topics (a page's `+` device), checks each delivery against its grant.

use std::collections::HashMap;
use std::sync::Arc;

use fleet_core::access::Grant;
use fleet_mqtt::QoS;
use fleet_mqtt::topic::matches;
use tokio::sync::Notify;
use tokio::sync::mpsc::{self, error::TrySendError};

/// Identifies one connection (client ids can be reused; connections cannot).
pub(crate) type ConnId = u64;

/// What a connection is asked to send or do.
#[derive(Debug, Clone)]
pub(crate) enum Outbound {
    /// Deliver an application message.
    Publish {
        topic: Arc<str>,
        payload: Arc<[u8]>,
        qos: QoS,
    },
    /// Another connection took over this client id (MQTT 3.1.1 §3.1.4-2): close.
    TakenOver,
}

/// A connection's way to receive and to be told to leave.
#[derive(Debug, Clone)]
pub(crate) struct Mailbox {
    /// Deliveries and takeovers.
    pub(crate) tx: mpsc::Sender<Outbound>,
    /// Notified when the connection must close because its queue is full and a QoS 1
    /// message could not be queued (the queue itself has no room to say so).
    pub(crate) kick: Arc<Notify>,
}

#[derive(Debug)]
struct Client {
    client_id: Arc<str>,
    mailbox: Mailbox,
    /// What the connection may do (`None` when the broker has no authenticator).
    grant: Option<Arc<Grant>>,
    /// This connection's filters, to remove them on disconnect.
    filters: Vec<String>,
}

/// One subscription of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sub {
    conn: ConnId,
    qos: QoS,
    /// Each delivery is checked against the subscriber's grant (`Receive::Checked`).
    checked: bool,
}

/// Result of delivering one message.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// Queued to subscribers.
    pub(crate) delivered: u64,
    /// QoS 0 deliveries dropped because the subscriber's queue was full.
    pub(crate) dropped: u64,
    /// Subscribers disconnected because a QoS 1 delivery found their queue full.
    pub(crate) kicked: u64,
}

/// Another identity holds the client id and may not be evicted by this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientIdInUse;

#[derive(Debug, Default)]
pub(crate) struct Router {
    clients: HashMap<ConnId, Client>,
    by_client_id: HashMap<Arc<str>, ConnId>,
    exact: HashMap<String, Vec<Sub>>,
    wildcard: Vec<(String, Sub)>,
}

impl Router {
    /// Registers a connection; returns the mailbox of the connection it takes over, if any,
    /// or refuses if another identity holds the client id (MQTT 3.1.1 §3.1.4-2 takeover,
    /// with the holder's consent: `Holder::may_take_over`).
    pub(crate) fn connect(
        &mut self,
        conn: ConnId,
        client_id: Arc<str>,
        mailbox: Mailbox,
        grant: Option<Arc<Grant>>,
    ) -> Result<Option<Mailbox>, ClientIdInUse> {
        let current = self
            .by_client_id
            .get(&client_id)
            .and_then(|c| self.clients.get(c));
        if let (Some(current), Some(new)) = (current, &grant) {
            let allowed = current
                .grant
                .as_ref()
                .is_none_or(|held| new.holder().may_take_over(held.holder()));
            if !allowed {
                return Err(ClientIdInUse);
            }
        }
        let previous = self.by_client_id.insert(client_id.clone(), conn);
        self.clients.insert(
            conn,
            Client {
                client_id,
                mailbox,
                grant,
                filters: Vec::new(),
            },
        );
        let Some(old) = previous.filter(|&p| p != conn) else {
            return Ok(None);
        };
        let old_mailbox = self.clients.get(&old).map(|c| c.mailbox.clone());
        self.disconnect(old);
        Ok(old_mailbox)
    }

    /// Forgets a connection and its subscriptions.
    pub(crate) fn disconnect(&mut self, conn: ConnId) {
        let Some(client) = self.clients.remove(&conn) else {
            return;
        };
        if self.by_client_id.get(&client.client_id) == Some(&conn) {
            self.by_client_id.remove(&client.client_id);
        }
        for filter in &client.filters {
            self.remove_filter(conn, filter);
        }
    }

    /// Adds (or updates) a subscription; returns the granted QoS. `checked`: deliveries
    /// through it are checked against the subscriber's grant.
    pub(crate) fn subscribe(&mut self, conn: ConnId, filter: &str, qos: QoS, checked: bool) -> QoS {
        // QoS 2 is not supported: grant 1, which the spec allows (§3.9.3).
        let granted = qos.min(QoS::AtLeastOnce);
        let Some(client) = self.clients.get_mut(&conn) else {
            return granted;
        };
        if !client.filters.iter().any(|f| f == filter) {
            client.filters.push(filter.to_owned());
        }
        let sub = Sub {
            conn,
            qos: granted,
            checked,
        };
        if filter.contains(['+', '#']) {
            match self
                .wildcard
                .iter_mut()
                .find(|(f, s)| s.conn == conn && f == filter)
            {
                Some(entry) => entry.1 = sub,
                None => self.wildcard.push((filter.to_owned(), sub)),
            }
        } else {
            let subs = self.exact.entry(filter.to_owned()).or_default();
            match subs.iter_mut().find(|s| s.conn == conn) {
                Some(entry) => *entry = sub,
                None => subs.push(sub),
            }
        }
        granted
    }

    /// Removes a subscription.
    pub(crate) fn unsubscribe(&mut self, conn: ConnId, filter: &str) {
        if let Some(client) = self.clients.get_mut(&conn) {
            client.filters.retain(|f| f != filter);
        }
        self.remove_filter(conn, filter);
    }

    fn remove_filter(&mut self, conn: ConnId, filter: &str) {
        if filter.contains(['+', '#']) {
            self.wildcard
                .retain(|(f, s)| !(s.conn == conn && f == filter));
        } else if let Some(subs) = self.exact.get_mut(filter) {
            subs.retain(|s| s.conn != conn);
            if subs.is_empty() {
                self.exact.remove(filter);
            }
        }
    }

    /// Delivers a message to every matching subscriber, once each.
    pub(crate) fn route(&self, topic: &str, payload: &[u8], qos: QoS) -> Delivery {
        // (connection, highest QoS, every matching subscription is checked)
        let mut targets: Vec<Sub> = Vec::new();
        let mut add = |sub: Sub| match targets.iter_mut().find(|t| t.conn == sub.conn) {
            Some(t) => {
                t.qos = t.qos.max(sub.qos);
                t.checked &= sub.checked;
            }
            None => targets.push(sub),
        };
        if let Some(subs) = self.exact.get(topic) {
            for &sub in subs {
                add(sub);
            }
        }
        for (filter, sub) in &self.wildcard {
            if matches(filter, topic) {
                add(*sub);
            }
        }
        let mut delivery = Delivery::default();
        if targets.is_empty() {
            return delivery;
        }
        let topic: Arc<str> = Arc::from(topic);
        let payload: Arc<[u8]> = Arc::from(payload);
        for target in targets {
            let Some(client) = self.clients.get(&target.conn) else {
                continue;
            };
            let receives =
                !target.checked || client.grant.as_ref().is_none_or(|g| g.receive(&topic));
            if !receives {
                continue;
            }
            let qos = qos.min(target.qos);
            let message = Outbound::Publish {
                topic: topic.clone(),
                payload: payload.clone(),
                qos,
            };
            match client.mailbox.tx.try_send(message) {
                Ok(()) => delivery.delivered += 1,
                // A full queue never stalls the publisher. QoS 0 may be lost by definition
                // (counted); a QoS 1 message may not be lost silently, so the subscriber is
                // disconnected instead and learns it missed something.
                Err(TrySendError::Full(_)) if qos == QoS::AtLeastOnce => {
                    client.mailbox.kick.notify_one();
                    delivery.kicked += 1;
                }
                // Full at QoS 0, or the connection is closing.
                Err(_) => delivery.dropped += 1,
            }
        }
        delivery
    }

    /// Connected clients.
    pub(crate) fn client_count(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(capacity: usize) -> (Mailbox, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            Mailbox {
                tx,
                kick: Arc::new(Notify::new()),
            },
            rx,
        )
    }

    fn client(r: &mut Router, conn: ConnId, id: &str) -> mpsc::Receiver<Outbound> {
        let (mailbox, rx) = mailbox(16);
        r.connect(conn, Arc::from(id), mailbox, None).unwrap();
        rx
    }

    fn topics(rx: &mut mpsc::Receiver<Outbound>) -> Vec<(String, QoS)> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .filter_map(|o| match o {
                Outbound::Publish { topic, qos, .. } => Some((topic.to_string(), qos)),
                Outbound::TakenOver => None,
            })
            .collect()
    }

    #[test]
    fn overlapping_filters_deliver_once_at_the_highest_qos() {
        let mut r = Router::default();
        let mut rx = client(&mut r, 1, "a");
        r.subscribe(
            1,
            "cmd/monitoring/1/d-1/remediation",
            QoS::AtMostOnce,
            false,
        );
        r.subscribe(1, "cmd/monitoring/+/+/remediation", QoS::AtLeastOnce, false);
        r.subscribe(1, "cmd/#", QoS::AtMostOnce, false);
        let d = r.route("cmd/monitoring/1/d-1/remediation", b"x", QoS::AtLeastOnce);
        assert_eq!(
            d,
            Delivery {
                delivered: 1,
                ..Delivery::default()
            }
        );
        assert_eq!(
            topics(&mut rx),
            [(
                "cmd/monitoring/1/d-1/remediation".to_string(),
                QoS::AtLeastOnce
            )]
        );
        // Delivered at the lower of publish and subscription QoS.
        r.route("cmd/other", b"x", QoS::AtLeastOnce);
        assert_eq!(
            topics(&mut rx),
            [("cmd/other".to_string(), QoS::AtMostOnce)]
        );
    }

    #[test]
    fn unsubscribe_and_disconnect_remove_filters() {
        let mut r = Router::default();
        let mut rx = client(&mut r, 1, "a");
        r.subscribe(1, "a/b", QoS::AtMostOnce, false);
        r.subscribe(1, "a/+", QoS::AtMostOnce, false);
        r.unsubscribe(1, "a/+");
        r.route("a/b", b"", QoS::AtMostOnce);
        assert_eq!(topics(&mut rx).len(), 1);
        r.disconnect(1);
        assert_eq!(r.route("a/b", b"", QoS::AtMostOnce).delivered, 0);
        assert!(r.exact.is_empty() && r.wildcard.is_empty());
    }

    #[test]
    fn a_second_connection_with_the_same_client_id_takes_over() {
        let mut r = Router::default();
        let _old = client(&mut r, 1, "dev");
        r.subscribe(1, "t", QoS::AtMostOnce, false);
        let (mb, _rx) = mailbox(1);
        assert!(r.connect(2, Arc::from("dev"), mb, None).unwrap().is_some());
        assert_eq!(r.client_count(), 1);
        assert_eq!(
            r.route("t", b"", QoS::AtMostOnce).delivered,
            0,
            "old subscriptions gone"
        );
        // The old connection leaving later must not unregister the new one.
        r.disconnect(1);
        assert_eq!(r.by_client_id.get("dev"), Some(&2));
    }

    #[test]
    fn a_full_subscriber_drops_qos0_and_is_disconnected_on_qos1() {
        let mut r = Router::default();
        let (mb, _rx) = mailbox(1);
        let kick = mb.kick.clone();
        r.connect(1, Arc::from("slow"), mb, None).unwrap();
        r.subscribe(1, "t", QoS::AtLeastOnce, false);
        assert_eq!(r.route("t", b"", QoS::AtMostOnce).delivered, 1);
        assert_eq!(
            r.route("t", b"", QoS::AtMostOnce),
            Delivery {
                dropped: 1,
                ..Delivery::default()
            }
        );
        // Never blocks, and a QoS 1 message is not lost silently: the subscriber is told
        // to leave.
        assert_eq!(
            r.route("t", b"", QoS::AtLeastOnce),
            Delivery {
                kicked: 1,
                ..Delivery::default()
            }
        );
        let notified = std::pin::pin!(kick.notified());
        assert!(
            futures_util::FutureExt::now_or_never(notified).is_some(),
            "the slow connection was notified"
        );
    }

    fn grant(identity: &fleet_core::Identity, client_id: &str) -> Option<Arc<Grant>> {
        Some(Arc::new(
            fleet_core::access::connect(identity, client_id, None).unwrap(),
        ))
    }

    #[test]
    fn another_identity_cannot_take_a_client_id_over() {
        let device = fleet_core::Identity::Device("d-1".try_into().unwrap());
        let mut r = Router::default();
        let (mb, _rx) = mailbox(1);
        r.connect(1, Arc::from("d-1"), mb, grant(&device, "d-1"))
            .unwrap();
        let (mb, _rx) = mailbox(1);
        let dev = grant(&fleet_core::Identity::Development, "d-1");
        assert_eq!(
            r.connect(2, Arc::from("d-1"), mb.clone(), dev).unwrap_err(),
            ClientIdInUse
        );
        assert_eq!(
            r.by_client_id.get("d-1"),
            Some(&1),
            "the device keeps its id"
        );
        // The same device reconnecting takes over.
        assert!(
            r.connect(3, Arc::from("d-1"), mb, grant(&device, "d-1"))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_checked_subscription_receives_only_what_its_grant_allows() {
        let page = fleet_core::Identity::Page(fleet_core::Namespace::new("w1").unwrap());
        let mut r = Router::default();
        let (mb, mut rx) = mailbox(8);
        r.connect(1, Arc::from("w1.gw0"), mb, grant(&page, "w1.gw0"))
            .unwrap();
        r.subscribe(1, "cmd/monitoring/1/+/remediation", QoS::AtLeastOnce, true);
        assert_eq!(
            r.route(
                "cmd/monitoring/1/w1-0001/remediation",
                b"",
                QoS::AtLeastOnce
            )
            .delivered,
            1
        );
        assert_eq!(
            r.route("cmd/monitoring/1/d-0001/remediation", b"", QoS::AtLeastOnce)
                .delivered,
            0
        );
        assert_eq!(
            topics(&mut rx),
            [(
                "cmd/monitoring/1/w1-0001/remediation".to_string(),
                QoS::AtLeastOnce
            )]
        );
    }
}
