/**
 * The signed-in user the demo keeps in the session: the seed's `TestUser`, done right. Tomcat
 * refused to replicate the seed's class (`NotSerializableException`) and the user looked logged out
 * on the other node; here the class is registered with the cluster, so it comes back as a `User`
 * (methods included) on whichever member serves the next request.
 */
import type { RegisteredType } from '../src/index.js';

/** A signed-in user. Plain fields only, so the registration below can list them. */
export class User {
  constructor(
    readonly username: string,
    readonly since: Date,
  ) {}

  /** A method, to show that the value is a real `User` again after replication, not a plain object. */
  greeting(): string {
    return `Welcome, ${this.username}`;
  }
}

/**
 * The registration passed to `createSessionCluster({ types })`. `revive` runs the constructor, so an
 * instance built from the wire is made the same way as one built by the login handler.
 */
export const userType: RegisteredType = {
  name: 'User',
  type: User,
  fields: ['username', 'since'],
  revive: (fields: unknown): User => {
    const { username, since } = fields as { username: unknown; since: unknown };
    return new User(String(username), since instanceof Date ? since : new Date(String(since)));
  },
};
