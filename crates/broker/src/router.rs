//! Subscriptions and fan-out.
//!
//! Filters without wildcards (every device's own command topic) sit in a hash map, so a
//! command to one of 25,000 devices costs one lookup; wildcard filters are few (dashboards,
//! the fleet-wide alarm topic) and are matched one by one. Each subscriber gets a message
//! once, at the highest QoS of its matching filters, however many of them overlap.

use std::collections::HashMap;
use std::sync::Arc;

use fleet_mqtt::QoS;
use fleet_mqtt::topic::matches;
use tokio::sync::mpsc;

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

#[derive(Debug)]
struct Client {
    client_id: Arc<str>,
    tx: mpsc::Sender<Outbound>,
    /// This connection's filters, to remove them on disconnect.
    filters: Vec<String>,
}

/// Result of delivering one message.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Router {
    clients: HashMap<ConnId, Client>,
    by_client_id: HashMap<Arc<str>, ConnId>,
    exact: HashMap<String, Vec<(ConnId, QoS)>>,
    wildcard: Vec<(String, ConnId, QoS)>,
}

impl Router {
    /// Registers a connection; returns the connection it takes over, if any.
    pub(crate) fn connect(
        &mut self,
        conn: ConnId,
        client_id: Arc<str>,
        tx: mpsc::Sender<Outbound>,
    ) -> Option<mpsc::Sender<Outbound>> {
        let previous = self.by_client_id.insert(client_id.clone(), conn);
        self.clients.insert(
            conn,
            Client {
                client_id,
                tx,
                filters: Vec::new(),
            },
        );
        let old = previous.filter(|&p| p != conn)?;
        let old_tx = self.clients.get(&old).map(|c| c.tx.clone());
        self.disconnect(old);
        old_tx
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

    /// Adds (or updates the QoS of) a subscription; returns the granted QoS.
    pub(crate) fn subscribe(&mut self, conn: ConnId, filter: &str, qos: QoS) -> QoS {
        // QoS 2 is not supported: grant 1, which the spec allows (§3.9.3).
        let granted = qos.min(QoS::AtLeastOnce);
        let Some(client) = self.clients.get_mut(&conn) else {
            return granted;
        };
        if !client.filters.iter().any(|f| f == filter) {
            client.filters.push(filter.to_owned());
        }
        if filter.contains(['+', '#']) {
            match self
                .wildcard
                .iter_mut()
                .find(|(f, c, _)| *c == conn && f == filter)
            {
                Some(entry) => entry.2 = granted,
                None => self.wildcard.push((filter.to_owned(), conn, granted)),
            }
        } else {
            let subs = self.exact.entry(filter.to_owned()).or_default();
            match subs.iter_mut().find(|(c, _)| *c == conn) {
                Some(entry) => entry.1 = granted,
                None => subs.push((conn, granted)),
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
                .retain(|(f, c, _)| !(*c == conn && f == filter));
        } else if let Some(subs) = self.exact.get_mut(filter) {
            subs.retain(|(c, _)| *c != conn);
            if subs.is_empty() {
                self.exact.remove(filter);
            }
        }
    }

    /// Delivers a message to every matching subscriber, once each.
    pub(crate) fn route(&self, topic: &str, payload: &[u8], qos: QoS) -> Delivery {
        let mut targets: Vec<(ConnId, QoS)> = Vec::new();
        let mut add =
            |conn: ConnId, sub_qos: QoS| match targets.iter_mut().find(|(c, _)| *c == conn) {
                Some(t) => t.1 = t.1.max(sub_qos),
                None => targets.push((conn, sub_qos)),
            };
        if let Some(subs) = self.exact.get(topic) {
            for &(conn, q) in subs {
                add(conn, q);
            }
        }
        for (filter, conn, q) in &self.wildcard {
            if matches(filter, topic) {
                add(*conn, *q);
            }
        }
        let mut delivery = Delivery::default();
        if targets.is_empty() {
            return delivery;
        }
        let topic: Arc<str> = Arc::from(topic);
        let payload: Arc<[u8]> = Arc::from(payload);
        for (conn, sub_qos) in targets {
            let Some(client) = self.clients.get(&conn) else {
                continue;
            };
            let message = Outbound::Publish {
                topic: topic.clone(),
                payload: payload.clone(),
                qos: qos.min(sub_qos),
            };
            match client.tx.try_send(message) {
                Ok(()) => delivery.delivered += 1,
                // Full or closing: drop rather than stall the publisher (counted).
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

    fn client(r: &mut Router, conn: ConnId, id: &str) -> mpsc::Receiver<Outbound> {
        let (tx, rx) = mpsc::channel(16);
        r.connect(conn, Arc::from(id), tx);
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
        r.subscribe(1, "cmd/monitoring/1/d-1/remediation", QoS::AtMostOnce);
        r.subscribe(1, "cmd/monitoring/+/+/remediation", QoS::AtLeastOnce);
        r.subscribe(1, "cmd/#", QoS::AtMostOnce);
        let d = r.route("cmd/monitoring/1/d-1/remediation", b"x", QoS::AtLeastOnce);
        assert_eq!(
            d,
            Delivery {
                delivered: 1,
                dropped: 0
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
        r.subscribe(1, "a/b", QoS::AtMostOnce);
        r.subscribe(1, "a/+", QoS::AtMostOnce);
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
        r.subscribe(1, "t", QoS::AtMostOnce);
        let (tx, _rx) = mpsc::channel(1);
        assert!(r.connect(2, Arc::from("dev"), tx).is_some());
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
    fn a_full_subscriber_drops_instead_of_blocking() {
        let mut r = Router::default();
        let (tx, _rx) = mpsc::channel(1);
        r.connect(1, Arc::from("slow"), tx);
        r.subscribe(1, "t", QoS::AtMostOnce);
        assert_eq!(r.route("t", b"", QoS::AtMostOnce).delivered, 1);
        assert_eq!(
            r.route("t", b"", QoS::AtMostOnce),
            Delivery {
                delivered: 0,
                dropped: 1
            }
        );
    }
}
